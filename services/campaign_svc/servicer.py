"""gRPC handlers of the campaign service."""

from herald.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc


class CampaignServiceServicer(campaign_service_pb2_grpc.CampaignServiceServicer):
    """Handlers of herald.campaign.v1.CampaignService: parse and validate, call the logic, convert the result."""

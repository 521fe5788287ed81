"""gRPC handlers of the delivery service."""

from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2, message_service_pb2_grpc


class DeliveryServiceServicer(delivery_service_pb2_grpc.DeliveryServiceServicer):
    """Handlers of herald.delivery.v1.DeliveryService: parse and validate, call the logic, convert the result."""


class MessageServiceServicer(message_service_pb2_grpc.MessageServiceServicer):
    """Handlers of herald.delivery.v1.MessageService: parse and validate, call the logic, convert the result."""

"""gRPC handlers of the segment service."""

from herald.segment.v1 import directory_service_pb2, directory_service_pb2_grpc
from herald.segment.v1 import segment_service_pb2, segment_service_pb2_grpc


class DirectoryServiceServicer(directory_service_pb2_grpc.DirectoryServiceServicer):
    """Handlers of herald.segment.v1.DirectoryService: parse and validate, call the logic, convert the result."""


class SegmentServiceServicer(segment_service_pb2_grpc.SegmentServiceServicer):
    """Handlers of herald.segment.v1.SegmentService: parse and validate, call the logic, convert the result."""

"""`python -m services.segment_svc` serves the segment service until SIGTERM/SIGINT."""

from services.kit.server import run_service
from services.segment_svc.app import build


def main() -> None:
    run_service("segment", build)


if __name__ == "__main__":
    main()

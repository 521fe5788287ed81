"""`python -m services.delivery_svc` serves the delivery service until SIGTERM/SIGINT."""

from services.kit.server import run_service
from services.delivery_svc.app import build


def main() -> None:
    run_service("delivery", build)


if __name__ == "__main__":
    main()

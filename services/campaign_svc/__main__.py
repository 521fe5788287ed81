"""`python -m services.campaign_svc` serves the campaign service until SIGTERM/SIGINT."""

from services.kit.server import run_service
from services.campaign_svc.app import build


def main() -> None:
    run_service("campaign", build)


if __name__ == "__main__":
    main()

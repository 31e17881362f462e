"""The partner systems, reached over HTTP with the clients in `integrations/`,
addressed by the settings."""

from __future__ import annotations

from hub.medical.enrollment import CreditLineGranter
from hub.settings import Settings
from integrations.bank import BankClient
from integrations.credit_bureau import CreditBureauClient
from integrations.hospital import HospitalClient
from integrations.partner_client import PartnerPool, partner_pool
from integrations.webhooks import WebhookSender
from models.core.partner_errors import PartnerRejected


class UnknownBankSystem(PartnerRejected):
    """No address is configured for this partner's system (CREDITHUB_*_SYSTEMS)."""


class PartnerSystems:
    """The credit database, every configured bank and hospital system, and the
    partners' webhook URLs, over one connection pool: the ports the hub's use cases
    are given (`hub.medical.enrollment.PartnerSystems`, `settlement_run.PayoutBank`,
    `reconciliation_run.Counterparties`, `collections_run.OverdueReporter`,
    `webhook_delivery.EventSender`)."""

    def __init__(self, settings: Settings, http: PartnerPool):
        self._http, self._settings = http, settings
        self.bureau = CreditBureauClient(http, settings.bureau_url, settings.bureau_api_key)
        self.webhooks = WebhookSender(http, settings.webhook_timeout_seconds)
        self._banks: dict[str, BankClient] = {}
        self._hospitals: dict[str, HospitalClient] = {}

    def bank(self, code: str) -> CreditLineGranter:
        return self.bank_client(code)

    def bank_client(self, code: str) -> BankClient:
        if code not in self._banks:
            system = self._settings.bank_systems.get(code)
            if system is None:
                raise UnknownBankSystem(f"no address for bank {code}; set CREDITHUB_BANK_SYSTEMS")
            self._banks[code] = BankClient(self._http, system["url"], system["api_key"])
        return self._banks[code]

    def hospital_client(self, code: str) -> HospitalClient:
        if code not in self._hospitals:
            system = self._settings.hospital_systems.get(code)
            if system is None:
                raise UnknownBankSystem(
                    f"no address for hospital {code}; set CREDITHUB_HOSPITAL_SYSTEMS"
                )
            self._hospitals[code] = HospitalClient(self._http, system["url"], system["api_key"])
        return self._hospitals[code]


_systems: dict[int, PartnerSystems] = {}


def partner_systems(settings: Settings) -> PartnerSystems:
    """One set of clients (one connection pool) per settings object."""
    if id(settings) not in _systems:
        _systems[id(settings)] = PartnerSystems(settings, partner_pool())
    return _systems[id(settings)]

"""Credit-easy loans as the partners do them: the channel (the city's app) submits
firms' applications and takes the best offer; the banks' loan desks publish
products, answer the applications offered to them, pay loans out, book the
firms' repayments and claim on the fund when a loan defaults.

All through the hub's public API (CONTRACT.md §4), with Idempotency-Keys and
unique bank references. The desks answer by the knobs: `loan_offer_rate` (offer
or decline), `loan_answer_rate` (the chance a desk answers on a given look: how
long it takes), `loan_rate_position` (where in the product's rate range it
offers); firms repay by habit (`firm_late_rate`, `firm_never_rate`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulators.traffic.firms import Firm, new_firm, pays_on
from simulators.traffic.world import World

# Each bank's products: (code suffix, name, min score, max yuan, max months, rate bps range,
# industries or None for all).
PRODUCTS: tuple[tuple[str, str, int, int, int, tuple[int, int], list[str] | None], ...] = (
    ("EASY", "Credit-easy working capital", 500, 3_000_000, 36, (385, 600), None),
    ("TECH", "Innovation loan", 650, 5_000_000, 36, (300, 450), ["software", "manufacturing"]),
)
EARLY_BY_DAYS = 3  # an early payer pays each instalment this long before it is due


def _channel(world: World) -> tuple[str, str] | None:
    channels = world.config.partners.channels
    return next(iter(sorted(channels.items())), None)


def publish_products(world: World) -> None:
    """Each bank desk publishes its products once (PUT: publishing again changes nothing)."""
    for bank, key in sorted(world.config.partners.banks.items()):
        if bank in world.products_published:
            continue
        ok = True
        for suffix, name, min_score, max_yuan, months, (low, high), industries in PRODUCTS:
            body = {
                "name": name,
                "min_score": min_score,
                "max_amount_fen": max_yuan * 100,
                "max_term_months": months,
                "annual_rate_bps_min": low,
                "annual_rate_bps_max": high,
                "industries": industries,
            }
            answer = world.put("product", f"/loan-products/{bank}-{suffix}", key, body)
            ok = ok and answer.status in (200, 201)
        if ok:
            world.products_published.add(bank)


def apply(world: World) -> None:
    """A new firm applies through the channel, consenting to every bank for 90 days."""
    channel = _channel(world)
    if channel is None:
        return
    knobs = world.knobs()
    on_time = max(0.0, 1 - knobs.firm_late_rate - knobs.firm_never_rate)
    firm = new_firm(world.rng, (on_time * 0.8, on_time * 0.2, knobs.firm_late_rate,
                                knobs.firm_never_rate))  # fmt: skip
    now = world.now()
    body = {
        "uscc": firm.uscc,
        "firm_name": firm.name,
        "amount_fen": firm.amount_fen,
        "term_months": firm.term_months,
        "purpose": "working capital",
        "consent": {
            "granted_at": now.isoformat(timespec="seconds"),
            "expires_at": (now + dt.timedelta(days=90)).isoformat(timespec="seconds"),
            "banks": ["*"],
        },
    }
    answer = world.post("apply", "/loan-applications", channel[1], body)
    if answer.status == 202:
        firm.application_id, firm.status = answer.body.get("application_id"), "applied"
        world.firms.append(firm)
        world.tally.applications += 1


def _product_for(bank: str, application: dict[str, Any]) -> tuple[str, tuple[int, int]] | None:
    profile = application.get("profile") or {}
    for suffix, _name, min_score, max_yuan, months, rates, industries in PRODUCTS:
        if (
            int(profile.get("score", 0)) >= min_score
            and int(application.get("amount_fen", 0)) <= max_yuan * 100
            and int(application.get("term_months", 0)) <= months
            and (industries is None or profile.get("industry") in industries)
        ):
            return f"{bank}-{suffix}", rates
    return None


def answer_open(world: World) -> None:
    """Each bank desk reads the applications offered to it and answers some of them."""
    knobs = world.knobs()
    for bank, key in sorted(world.config.partners.banks.items()):
        listing = world.get("open_applications", "/loan-applications?status=open&limit=100", key)
        for application in listing.body.get("data", []) if listing.status == 200 else []:
            if world.rng.random() >= knobs.loan_answer_rate:
                continue  # not today: the desk answers later (or misses the deadline)
            path = f"/loan-applications/{application['application_id']}"
            product = _product_for(bank, application)
            if product is None or world.rng.random() >= knobs.loan_offer_rate:
                world.post("decline", f"{path}/declines", key, {"reason": "outside our appetite"})
                continue
            code, (low, high) = product
            offer = {
                "product_code": code,
                "amount_fen": int(application["amount_fen"]),
                "annual_rate_bps": low + round((high - low) * knobs.loan_rate_position),
                "term_months": int(application["term_months"]),
            }
            if world.post("offer", f"{path}/offers", key, offer).status == 201:
                world.tally.offers += 1


def take_offers(world: World) -> None:
    """The channel reads each application in progress and takes its cheapest offer."""
    channel = _channel(world)
    if channel is None:
        return
    for firm in [f for f in world.firms if f.status == "applied"]:
        answer = world.get("read_application", f"/loan-applications/{firm.application_id}",
                           channel[1])  # fmt: skip
        status = answer.body.get("status") if answer.status == 200 else None
        if status in ("declined", "expired"):
            firm.status = "done"
            world.tally.not_lent += 1
        elif status == "open":
            offers = [o for o in answer.body.get("offers") or [] if o.get("status") == "open"]
            if offers:
                _accept(world, channel[1], firm, min(offers, key=lambda o: o["annual_rate_bps"]))


def _accept(world: World, key: str, firm: Firm, offer: dict[str, Any]) -> None:
    answer = world.post("accept", f"/offers/{offer['offer_id']}/accept", key, {})
    if answer.status == 201:
        firm.loan_id, firm.status = answer.body.get("loan_id"), "borrowing"
        loan = world.get("read_loan", f"/loans/{firm.loan_id}", key)  # whose loan it is
        firm.bank_code = loan.body.get("bank_code") if loan.status == 200 else None
        world.tally.loans += 1


def _bank_key(world: World, firm: Firm) -> str | None:
    return world.config.partners.banks.get(firm.bank_code or "")


def pay_out(world: World) -> None:
    """The banks pay out the loans their offers became."""
    for firm in [f for f in world.firms if f.status == "borrowing" and not f.disbursed]:
        key = _bank_key(world, firm)
        loan = world.get("read_loan", f"/loans/{firm.loan_id}", key) if key else None
        if loan is None or loan.status != 200:
            continue
        if loan.body.get("status") != "approved":
            firm.disbursed = True  # paid out already (an answer lost on the way)
            continue
        body = {
            "amount_fen": loan.body["principal_fen"],
            "bank_txn_id": world.ref(firm.bank_code or "BANK", "L"),
            "disbursed_at": world.now().isoformat(),  # to the microsecond: just after the approval
        }
        if (
            world.post("disburse", f"/loans/{firm.loan_id}/disbursements", key or "", body).status
            == 201
        ):
            firm.disbursed = True
            world.tally.lent_fen += int(body["amount_fen"])


def _due_now(firm: Firm, schedule: list[dict[str, Any]], today: dt.date) -> int:
    owed = 0
    for row in schedule:
        due = dt.date.fromisoformat(row["due_date"])
        when = (
            due - dt.timedelta(days=EARLY_BY_DAYS)
            if firm.habit == "early"
            else pays_on(firm.habit, due)
        )
        if when is not None and when <= today:
            owed += row["principal_fen"] + row["interest_fen"] - row["paid_fen"]
    return owed


def repay_due(world: World, only_one: bool = False) -> None:
    """Each firm with a loan pays what its habit says is due today; banks claim on the
    fund for loans that defaulted. `only_one`: one firm (the real-time walk)."""
    borrowing = [f for f in world.firms if f.status == "borrowing" and f.disbursed]
    if only_one and borrowing:
        borrowing = [world.rng.choice(borrowing)]
    for firm in borrowing:
        key = _bank_key(world, firm)
        loan = world.get("read_loan", f"/loans/{firm.loan_id}", key) if key else None
        if loan is None or loan.status != 200:
            continue
        status = loan.body.get("status")
        if status == "closed":
            firm.status = "done"
            continue
        if status == "defaulted" and not firm.claimed:
            claim = world.post("claim", "/risk-compensation/claims", key or "",
                               {"loan_id": firm.loan_id})  # fmt: skip
            firm.claimed = claim.status == 201 or claim.body.get("code") == "already_claimed"
            world.tally.claims += claim.status == 201
        amount = _due_now(firm, loan.body.get("schedule") or [], world.today())
        if amount > 0:
            body = {
                "amount_fen": amount,
                "bank_txn_id": world.ref(firm.bank_code or "BANK", "R"),
                "paid_at": world.now().isoformat(),
            }
            if (
                world.post(
                    "loan_repay", f"/loans/{firm.loan_id}/repayments", key or "", body
                ).status
                == 201
            ):
                world.tally.loan_repaid_fen += amount

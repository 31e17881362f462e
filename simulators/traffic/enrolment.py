"""Residents sign up at a hospital desk; the hospital learns how each enrolment was decided."""

from __future__ import annotations

import time

from simulators.traffic.people import HABIT_WEIGHTS, HABITS, Resident, adult_id_number, phone_number
from simulators.traffic.world import World


def enrol(world: World) -> None:
    """A resident signs up at a hospital desk, naming the bank that will fund the line.

    The name is what the credit database knows (a real resident knows it); one
    the database does not know still tries, and is declined.
    """
    partners = world.config.partners
    if not partners.banks or not partners.hospitals:
        return
    rng = world.rng
    hospital, bank = rng.choice(world.hospitals()), rng.choice(sorted(partners.banks))
    number, phone = adult_id_number(rng, world.today()), phone_number(rng)
    habit = rng.choices(HABITS, weights=HABIT_WEIGHTS)[0]
    known = world.call(
        "bureau_lookup",
        "GET",
        f"{world.config.bureau_url}/persons/{number}",
        world.config.bureau_key,
    )
    if known.status not in (200, 404):
        return
    name = str(known.body.get("name") or "王某")
    resident = Resident(number, name, phone, hospital, habit=habit)
    body = {
        "id_number": number,
        "name": name,
        "phone": phone,
        "bank_code": bank,
        "consent": {
            "purpose": "medical_credit",
            "granted_at": world.now().isoformat(timespec="seconds"),
            "text_version": "2026-01",
        },
    }
    answer = world.post("enrol", "/enrollments", world.hospital_key(hospital), body)
    if answer.status == 202:
        resident.enrollment_id, resident.status = answer.body["enrollment_id"], "pending"
        resident.polled_at = time.monotonic()
    elif answer.status == 409:
        resident.status = "enrolled"  # enrolled before (an earlier run): a check finds the line
    else:
        return
    world.residents.append(resident)


def poll(world: World, resident: Resident) -> None:
    """The enrolling hospital asks how the enrolment was decided."""
    answer = world.get(
        "poll", f"/enrollments/{resident.enrollment_id}", world.hospital_key(resident.hospital)
    )
    resident.polled_at = time.monotonic()
    status = answer.body.get("status") if answer.status == 200 else None
    if status == "approved":
        line = answer.body["credit_line"]
        resident.status, resident.line_id = "enrolled", line["credit_line_id"]
        resident.bank_code, resident.available_fen = line["bank_code"], line["limit_fen"]
        world.tally.approved += 1
    elif status == "declined" or answer.status == 404:
        world.residents.remove(resident)
        if status == "declined":
            world.tally.declined += 1

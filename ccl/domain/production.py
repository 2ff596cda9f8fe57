"""A plausible production run of the coil coating line, as the MES would report it.

Pure and deterministic for a seed: it yields ``Event(at, tc_code, values, note)`` in time
order (``at`` in seconds from the start of the run), never ending:

* schedules (4000) are sent ahead: the first few at the start, then one more each time a
  coil enters the line;
* the weld point of each coil passes the detector (4002) when that coil enters;
* the line speed (4003) every 3 s, drifting around the target speed;
* the exit cut (4001) when a coil's tail reaches the exit shear, ``exit_delay`` metres of
  strip after it passed the detector;
* an alive (4999) every 30 s (not a process telegram; never ACKed).
"""

from __future__ import annotations

import decimal
import random
from collections.abc import Iterator

import attrs

CUSTOMERS = ("이알텍㈜", "동국씨엠", "똠방각하", "㈜한빛강판", "세아씨엠", "대한컬러강판㈜", "부산철강상사")
MATERIALS = ("F37EA4M-49RE6A", "G21PC3N-11WH2B", "F45RT2M-30GR1A", "H12EC7P-52BL9C")
BOMS = ("H7850B", "H7851A", "H6620C", "H9010A")
SPEED_EVERY = 3.0
ALIVE_EVERY = 30.0


@attrs.frozen
class Event:
    at: float
    tc_code: str
    values: dict
    note: str = ""


@attrs.frozen
class Coil:
    coil_number: str
    customer_name: str
    values: dict

    @property
    def length_m(self) -> int:
        return self.values["length_value"]


def make_coil(index: int, rng: random.Random, first_number: int = 477707) -> Coil:
    thickness = decimal.Decimal(rng.choice((372, 400, 450, 500, 600, 800))).scaleb(-3)
    width = rng.choice((914, 1000, 1212, 1219, 1250))
    # Steel: 7.85 t/m3; a coil of 5-12 t.
    weight = rng.randrange(5000, 12000, 10)
    length = int(weight / (7.85 * float(thickness) / 1000 * width / 1000) / 1000)
    coil = f"H{first_number + index}"
    values = {
        "coil_number": coil, "mo_number": f"C{401005 + index}", "product_group": str(rng.choice((1, 2, 3))),
        "material_code": rng.choice(MATERIALS), "customer_name": rng.choice(CUSTOMERS),
        "ccl_bom": rng.choice(BOMS), "thickness": thickness, "width": width, "weight": weight,
        "length_value": length, "through_plate": rng.choice("ZYX"), "sequence_order": index % 999 + 1,
    }
    return Coil(coil, values["customer_name"], values)


def production_run(seed: int = 1, *, target_speed: int = 120, schedules_ahead: int = 3,
                   exit_delay: float = 250.0) -> Iterator[Event]:
    rng = random.Random(seed)
    coils: list[Coil] = []

    def coil(index: int) -> Coil:
        while len(coils) <= index:
            coils.append(make_coil(len(coils), rng))
        return coils[index]

    pending: list[Event] = [Event(0.0, "4000", coil(i).values, f"schedule {coil(i).coil_number} "
                                  f"{coil(i).customer_name}") for i in range(schedules_ahead)]
    now = 0.0
    speed = float(target_speed)
    current = 0
    position = 0.0  # metres of the current coil past the detector
    pending.append(Event(0.0, "4002", {"coil_number": coil(0).coil_number},
                         f"coil {coil(0).coil_number} enters (WPD)"))
    exits: list[tuple[float, str]] = []  # (metres of strip still to run, coil) until the cut
    next_alive = ALIVE_EVERY
    while True:
        pending.sort(key=lambda e: e.at)
        for event in pending:
            yield event
        pending = []
        now += SPEED_EVERY
        speed = min(target_speed * 1.1, max(target_speed * 0.8, speed + rng.uniform(-3, 3)))
        mpm = int(round(speed))
        pending.append(Event(now, "4003", {"line_speed": mpm}))
        advance = speed * SPEED_EVERY / 60.0
        exits = [(left - advance, number) for left, number in exits]
        for left, number in [e for e in exits if e[0] <= 0]:
            pending.append(Event(now, "4001", {"coil_number": number, "cut_mode": 1,
                                               "winding_length": coil_length(coils, number)},
                                 f"coil {number} cut at the exit"))
        exits = [e for e in exits if e[0] > 0]
        position += advance
        if position >= coil(current).length_m:
            position -= coil(current).length_m
            exits.append((exit_delay + position, coil(current).coil_number))
            current += 1
            entering = coil(current)
            pending.append(Event(now, "4002", {"coil_number": entering.coil_number},
                                 f"coil {entering.coil_number} ({entering.customer_name}) enters (WPD)"))
            ahead = coil(current + schedules_ahead - 1)
            pending.append(Event(now, "4000", ahead.values, f"schedule {ahead.coil_number} {ahead.customer_name}"))
        if now >= next_alive:
            pending.append(Event(now, "4999", {}))
            next_alive += ALIVE_EVERY


def coil_length(coils: list[Coil], number: str) -> int:
    return next(c.length_m for c in coils if c.coil_number == number)

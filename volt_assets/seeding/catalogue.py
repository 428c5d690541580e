"""The electrical component catalogue the demo shop sells: categories, manufacturers, product
lines, and the concrete variants (name, specs, base price, voltage) built from them.

Variants are expanded here in Python (a few thousand, deterministic for a seed) and shipped
to PostgreSQL as one small table; each generated component then picks a variant by a hash
of its id. That keeps realistic, spec-consistent names ("ABB S201 C16 Miniature Circuit
Breaker") without per-row string templating in SQL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

# Category slug -> (SKU code, share of the catalogue). Slugs are the lake's known categories.
CATEGORIES: dict[str, tuple[str, int]] = {
    "cables": ("CAB", 10),
    "circuit-breakers": ("CB", 12),
    "fuses": ("FUS", 6),
    "switches": ("SW", 8),
    "sockets": ("SOC", 8),
    "relays": ("REL", 7),
    "contactors": ("CON", 6),
    "transformers": ("TRF", 3),
    "resistors": ("RES", 7),
    "capacitors": ("CAP", 7),
    "connectors": ("CNN", 8),
    "lighting": ("LGT", 8),
    "sensors": ("SEN", 5),
    "power-supplies": ("PSU", 3),
    "meters": ("MTR", 2),
}

# Manufacturer -> SKU prefix.
MANUFACTURERS: dict[str, str] = {
    "ABB": "ABB",
    "Schneider Electric": "SCH",
    "Siemens": "SIE",
    "Legrand": "LEG",
    "Eaton": "EAT",
    "Hager": "HAG",
    "Phoenix Contact": "PHX",
    "Finder": "FIN",
    "Omron": "OMR",
    "Lapp": "LAP",
    "Nexans": "NEX",
    "Prysmian": "PRY",
    "TF Kable": "TFK",
    "Helukabel": "HEL",
    "Littelfuse": "LTF",
    "Bussmann": "BUS",
    "ETI": "ETI",
    "Kontakt-Simon": "KSM",
    "Berker": "BRK",
    "Gira": "GIR",
    "Relpol": "RLP",
    "Weidmüller": "WEI",
    "Lovato": "LOV",
    "Breve Tufvassons": "BRV",
    "Vishay": "VIS",
    "Yageo": "YAG",
    "Bourns": "BOU",
    "Murata": "MUR",
    "KEMET": "KEM",
    "TDK": "TDK",
    "Nichicon": "NIC",
    "Wago": "WAG",
    "TE Connectivity": "TEC",
    "Harting": "HAR",
    "Signify": "SIG",
    "LEDVANCE": "LDV",
    "Kanlux": "KAN",
    "Sick": "SCK",
    "ifm electronic": "IFM",
    "Pepperl+Fuchs": "PFU",
    "Mean Well": "MWL",
    "F&F": "FIF",
    "Carlo Gavazzi": "CGV",
}


@dataclass(frozen=True)
class Line:
    """A product line: one manufacturer's series in a category, with its name template,
    spec options (one value of each is picked per variant), price range and voltages."""

    category: str
    manufacturer: str
    series: str
    template: str  # str.format fields: m (manufacturer), s (series), any spec key
    specs: dict[str, tuple]
    price_pln: tuple[float, float]
    voltages: tuple[float, ...]


_CB = {
    "poles": (1, 2, 3, 4),
    "curve": ("B", "C", "D"),
    "current_a": (6, 10, 13, 16, 20, 25, 32, 40, 50, 63),
    "breaking_capacity_ka": (6, 10),
}
_RCD = {
    "poles": (2, 4),
    "current_a": (25, 40, 63),
    "sensitivity_ma": (10, 30, 100, 300),
    "type": ("AC", "A", "F", "B"),
}
_CABLE = {
    "cores": (2, 3, 4, 5, 7),
    "cross_section_mm2": (0.75, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0, 16.0),
    "length_m": (50, 100, 500),
    "insulation": ("PVC", "rubber", "LSZH"),
}
_FUSE = {
    "current_a": (2, 4, 6, 10, 16, 20, 25, 32, 63, 100, 125, 160),
    "size": ("10x38", "14x51", "NH00", "NH1"),
    "utilization": ("gG", "aM", "gR"),
    "breaking_capacity_ka": (50, 80, 100, 120),
}
_SWITCH = {
    "gang": (1, 2),
    "function": ("One-Way", "Two-Way", "Intermediate", "Push-Button"),
    "ip_rating": ("IP20", "IP44"),
    "color": ("white", "anthracite", "cream", "aluminium"),
}
_SOCKET = {
    "gangs": (1, 2, 3),
    "type": ("Schuko", "2P+E", "USB-A/C"),
    "ip_rating": ("IP20", "IP44", "IP54"),
    "current_a": (16,),
    "color": ("white", "black", "silver"),
}
_RELAY = {
    "coil_voltage": ("12VDC", "24VDC", "230VAC"),
    "contacts": ("1CO", "2CO", "4CO"),
    "contact_current_a": (6, 8, 10, 16),
}
_CONTACTOR = {
    "poles": (3, 4),
    "current_a": (9, 12, 18, 25, 32, 40, 65, 95),
    "coil_voltage": ("24VDC", "24VAC", "230VAC"),
    "power_kw": (4, 5.5, 7.5, 11, 15, 18.5, 30, 45),
}
_TRAFO = {
    "power_va": (63, 100, 160, 250, 400, 630, 1000),
    "primary_v": (230, 400),
    "secondary_v": (12, 24, 110, 230),
    "ip_rating": ("IP00", "IP20"),
}
_RESISTOR = {
    "resistance": ("10Ω", "100Ω", "470Ω", "1kΩ", "4.7kΩ", "10kΩ", "100kΩ", "1MΩ"),
    "tolerance": ("1%", "5%"),
    "power_w": (0.125, 0.25, 0.5, 1, 2),
    "package": ("0603", "0805", "1206", "THT"),
}
_CAP = {
    "capacitance": ("100nF", "1µF", "10µF", "47µF", "100µF", "470µF", "1000µF"),
    "dielectric": ("X7R ceramic", "Electrolytic", "Film"),
    "voltage_v": (16, 25, 50, 63, 100, 400),
}
_CONN = {
    "positions": (2, 3, 5, 8, 12),
    "pitch_mm": (3.5, 5.0, 5.08),
    "cross_section_mm2": (0.5, 1.5, 2.5, 4.0),
    "current_a": (10, 16, 24, 32),
}
_LIGHT = {
    "power_w": (5, 9, 12, 18, 36, 40),
    "color_temp_k": (2700, 3000, 4000, 6500),
    "ip_rating": ("IP20", "IP44", "IP65"),
    "form": ("Panel", "Downlight", "Tube", "Floodlight", "E27 Bulb"),
}
_SENSOR = {
    "type": ("Inductive Proximity", "Photoelectric", "Capacitive"),
    "sensing_range_mm": (2, 4, 8, 15, 40),
    "output": ("PNP NO", "NPN NO", "PNP NC"),
    "ip_rating": ("IP67", "IP68"),
}
_PSU = {
    "power_w": (15, 30, 60, 120, 240, 480),
    "output_v": (5, 12, 24, 48),
    "mounting": ("DIN rail", "enclosed"),
}
_METER = {
    "phases": (1, 3),
    "max_current_a": (40, 65, 80, 100),
    "interface": ("pulse", "Modbus RTU", "M-Bus"),
    "accuracy_class": ("B", "1"),
}

LINES: tuple[Line, ...] = (
    Line(
        "circuit-breakers",
        "ABB",
        "S20",
        "{m} {s}{poles} {curve}{current_a} Miniature Circuit Breaker",
        _CB,
        (14, 180),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "Schneider Electric",
        "Acti9 iC60N",
        "{m} {s} {poles}P {curve}{current_a}A Miniature Circuit Breaker",
        _CB,
        (25, 260),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "Siemens",
        "5SL6",
        "{m} {s} {poles}P {curve}{current_a} Miniature Circuit Breaker",
        _CB,
        (18, 210),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "Eaton",
        "PL6",
        "{m} {s}-{curve}{current_a}/{poles} Miniature Circuit Breaker",
        _CB,
        (9, 120),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "Hager",
        "MCN",
        "{m} {s} {curve}{current_a}A {poles}P Circuit Breaker {breaking_capacity_ka}kA",
        _CB,
        (12, 150),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "Legrand",
        "DX3",
        "{m} {s} {poles}P {curve}{current_a} Circuit Breaker",
        _CB,
        (16, 170),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "ABB",
        "F20",
        "{m} {s}{poles} {current_a}A {sensitivity_ma}mA Type {type} Residual Current Device",
        _RCD,
        (120, 900),
        (230, 400),
    ),
    Line(
        "circuit-breakers",
        "F&F",
        "P304",
        "{m} {s} {current_a}A {sensitivity_ma}mA Type {type} RCD",
        _RCD,
        (80, 420),
        (230, 400),
    ),
    Line(
        "cables",
        "Lapp",
        "ÖLFLEX CLASSIC 110",
        "{m} {s} {cores}G{cross_section_mm2} Control Cable {length_m} m",
        _CABLE,
        (60, 4800),
        (500,),
    ),
    Line(
        "cables",
        "Nexans",
        "H07RN-F",
        "{m} {s} {cores}x{cross_section_mm2} mm² Rubber Cable {length_m} m",
        _CABLE,
        (90, 6500),
        (750,),
    ),
    Line(
        "cables",
        "Prysmian",
        "NYM-J",
        "{m} {s} {cores}x{cross_section_mm2} mm² Installation Cable {length_m} m",
        _CABLE,
        (70, 5200),
        (500,),
    ),
    Line(
        "cables",
        "TF Kable",
        "YDYp",
        "{m} {s} {cores}x{cross_section_mm2} mm² Flat Cable {length_m} m",
        _CABLE,
        (50, 3900),
        (750,),
    ),
    Line(
        "cables",
        "Helukabel",
        "JZ-500",
        "{m} {s} {cores}G{cross_section_mm2} Flexible Cable {length_m} m",
        _CABLE,
        (80, 5600),
        (500,),
    ),
    Line(
        "fuses",
        "Bussmann",
        "C10G",
        "{m} {s} {utilization} {current_a}A {size} Fuse Link",
        _FUSE,
        (4, 60),
        (400, 500, 690),
    ),
    Line(
        "fuses",
        "Littelfuse",
        "KLDR",
        "{m} {s} {current_a}A {size} Cartridge Fuse {utilization}",
        _FUSE,
        (5, 80),
        (400, 500),
    ),
    Line(
        "fuses",
        "ETI",
        "WT-00",
        "{m} {s} {utilization} {current_a}A Fuse {breaking_capacity_ka}kA",
        _FUSE,
        (6, 90),
        (500, 690),
    ),
    Line(
        "switches",
        "Legrand",
        "Valena Life",
        "{m} {s} {gang}-Gang {function} Switch, {color}",
        _SWITCH,
        (15, 95),
        (250,),
    ),
    Line(
        "switches",
        "Schneider Electric",
        "Sedna Design",
        "{m} {s} {function} Switch {ip_rating}, {color}",
        _SWITCH,
        (18, 110),
        (250,),
    ),
    Line(
        "switches",
        "Kontakt-Simon",
        "Simon 54",
        "{m} {s} {gang}-Gang {function} Light Switch, {color}",
        _SWITCH,
        (12, 80),
        (250,),
    ),
    Line(
        "switches",
        "Berker",
        "S.1",
        "{m} {s} {function} Rocker Switch, {color}",
        _SWITCH,
        (20, 130),
        (250,),
    ),
    Line(
        "sockets",
        "Legrand",
        "Niloé",
        "{m} {s} {gangs}x {type} Socket Outlet {ip_rating}, {color}",
        _SOCKET,
        (14, 120),
        (250,),
    ),
    Line(
        "sockets",
        "Gira",
        "System 55",
        "{m} {s} {type} Socket Outlet {current_a}A, {color}",
        _SOCKET,
        (30, 190),
        (250,),
    ),
    Line(
        "sockets",
        "Hager",
        "Kallysta",
        "{m} {s} {gangs}-Gang {type} Socket {ip_rating}",
        _SOCKET,
        (22, 140),
        (250,),
    ),
    Line(
        "sockets",
        "Kontakt-Simon",
        "Simon 10",
        "{m} {s} {type} Socket Outlet {ip_rating}, {color}",
        _SOCKET,
        (9, 70),
        (250,),
    ),
    Line(
        "relays",
        "Finder",
        "40.52",
        "{m} {s} {coil_voltage} {contacts} {contact_current_a}A Miniature PCB Relay",
        _RELAY,
        (12, 55),
        (250,),
    ),
    Line(
        "relays",
        "Finder",
        "55.34",
        "{m} {s} {coil_voltage} {contacts} General Purpose Relay",
        _RELAY,
        (18, 75),
        (250,),
    ),
    Line(
        "relays",
        "Omron",
        "G2R",
        "{m} {s} {coil_voltage} {contacts} Power Relay {contact_current_a}A",
        _RELAY,
        (10, 48),
        (250,),
    ),
    Line(
        "relays",
        "Omron",
        "MY4",
        "{m} {s} {coil_voltage} {contacts} Plug-in Relay",
        _RELAY,
        (22, 90),
        (250,),
    ),
    Line(
        "relays",
        "Relpol",
        "RM84",
        "{m} {s} {coil_voltage} {contacts} {contact_current_a}A Relay",
        _RELAY,
        (8, 40),
        (250,),
    ),
    Line(
        "relays",
        "Phoenix Contact",
        "PLC-RSC",
        "{m} {s} {coil_voltage} {contacts} Relay Module",
        _RELAY,
        (45, 160),
        (250,),
    ),
    Line(
        "contactors",
        "Schneider Electric",
        "TeSys D LC1D",
        "{m} {s} {current_a}A {poles}P Contactor, coil {coil_voltage}",
        _CONTACTOR,
        (120, 1900),
        (400, 690),
    ),
    Line(
        "contactors",
        "Siemens",
        "SIRIUS 3RT20",
        "{m} {s} {power_kw}kW {poles}P Contactor {coil_voltage}",
        _CONTACTOR,
        (140, 2100),
        (400, 690),
    ),
    Line(
        "contactors",
        "ABB",
        "AF",
        "{m} {s}{current_a}-30-10 Contactor {coil_voltage}",
        _CONTACTOR,
        (130, 2000),
        (400, 690),
    ),
    Line(
        "contactors",
        "Eaton",
        "DILM",
        "{m} {s}{current_a} Contactor {power_kw}kW {coil_voltage}",
        _CONTACTOR,
        (110, 1700),
        (400, 690),
    ),
    Line(
        "contactors",
        "Lovato",
        "BF",
        "{m} {s} {current_a}A Contactor {coil_voltage}",
        _CONTACTOR,
        (90, 1400),
        (400, 690),
    ),
    Line(
        "transformers",
        "Breve Tufvassons",
        "TMM",
        "{m} {s} {power_va} VA {primary_v}/{secondary_v} V Control Transformer",
        _TRAFO,
        (120, 1600),
        (230, 400),
    ),
    Line(
        "transformers",
        "Siemens",
        "4AM",
        "{m} {s} {power_va} VA {primary_v}/{secondary_v} V Transformer {ip_rating}",
        _TRAFO,
        (180, 2400),
        (230, 400),
    ),
    Line(
        "transformers",
        "Schneider Electric",
        "Phaseo ABL6",
        "{m} {s} {power_va} VA Control Transformer {primary_v}/{secondary_v} V",
        _TRAFO,
        (160, 2200),
        (230, 400),
    ),
    Line(
        "resistors",
        "Vishay",
        "CRCW",
        "{m} {s}{package} {resistance} {tolerance} {power_w}W Thick Film Resistor",
        _RESISTOR,
        (0.05, 4),
        (50, 150, 200),
    ),
    Line(
        "resistors",
        "Yageo",
        "RC",
        "{m} {s}{package} {resistance} {tolerance} Chip Resistor",
        _RESISTOR,
        (0.03, 2),
        (50, 150),
    ),
    Line(
        "resistors",
        "Bourns",
        "CR",
        "{m} {s}{package} {resistance} {tolerance} {power_w}W Resistor",
        _RESISTOR,
        (0.05, 3),
        (50, 200),
    ),
    Line(
        "capacitors",
        "Murata",
        "GRM",
        "{m} {s} {capacitance} {voltage_v}V {dielectric} Capacitor",
        _CAP,
        (0.1, 12),
        (16, 50, 100),
    ),
    Line(
        "capacitors",
        "KEMET",
        "ESK",
        "{m} {s} {capacitance} {voltage_v}V {dielectric} Capacitor",
        _CAP,
        (0.2, 25),
        (25, 63, 400),
    ),
    Line(
        "capacitors",
        "TDK",
        "EPCOS B43",
        "{m} {s} {capacitance} {voltage_v}V {dielectric} Capacitor",
        _CAP,
        (0.5, 45),
        (63, 400),
    ),
    Line(
        "capacitors",
        "Nichicon",
        "UVR",
        "{m} {s} {capacitance} {voltage_v}V {dielectric} Capacitor",
        _CAP,
        (0.3, 20),
        (16, 25, 50),
    ),
    Line(
        "connectors",
        "Wago",
        "221",
        "{m} {s}-41{positions} Splicing Connector {positions}-Conductor",
        _CONN,
        (1, 9),
        (450,),
    ),
    Line(
        "connectors",
        "Phoenix Contact",
        "PT",
        "{m} {s} {cross_section_mm2} Push-in Terminal Block {positions}-Pos, {pitch_mm} mm",
        _CONN,
        (2, 35),
        (400, 800),
    ),
    Line(
        "connectors",
        "Weidmüller",
        "OMNIMATE",
        "{m} {s} {positions}-Pole PCB Connector {pitch_mm} mm",
        _CONN,
        (3, 40),
        (250, 400),
    ),
    Line(
        "connectors",
        "TE Connectivity",
        "AMP Duo",
        "{m} {s} {positions}-Pole Connector {current_a}A",
        _CONN,
        (2, 30),
        (250,),
    ),
    Line(
        "connectors",
        "Harting",
        "Han E",
        "{m} {s} {positions}-Pole Heavy Duty Connector {current_a}A",
        _CONN,
        (40, 420),
        (400, 500),
    ),
    Line(
        "lighting",
        "Signify",
        "CoreLine",
        "{m} {s} {power_w}W {color_temp_k}K LED {form} {ip_rating}",
        _LIGHT,
        (25, 600),
        (230,),
    ),
    Line(
        "lighting",
        "LEDVANCE",
        "Value",
        "{m} {s} {power_w}W {color_temp_k}K LED {form}",
        _LIGHT,
        (9, 320),
        (230,),
    ),
    Line(
        "lighting",
        "Kanlux",
        "Bravo",
        "{m} {s} {power_w}W {color_temp_k}K LED {form} {ip_rating}",
        _LIGHT,
        (12, 380),
        (230,),
    ),
    Line(
        "sensors",
        "Omron",
        "E2E",
        "{m} {s} {type} Sensor {sensing_range_mm} mm {output}",
        _SENSOR,
        (90, 650),
        (24,),
    ),
    Line(
        "sensors",
        "Sick",
        "IME12",
        "{m} {s} {type} Sensor {sensing_range_mm} mm {output} {ip_rating}",
        _SENSOR,
        (120, 800),
        (24,),
    ),
    Line(
        "sensors",
        "ifm electronic",
        "IFS",
        "{m} {s} {type} Sensor {sensing_range_mm} mm {output}",
        _SENSOR,
        (110, 720),
        (24,),
    ),
    Line(
        "sensors",
        "Pepperl+Fuchs",
        "NBB",
        "{m} {s} {type} Sensor {sensing_range_mm} mm",
        _SENSOR,
        (130, 900),
        (24,),
    ),
    Line(
        "power-supplies",
        "Mean Well",
        "HDR",
        "{m} {s}-{power_w}-{output_v} {power_w}W {output_v}V DIN Rail Power Supply",
        _PSU,
        (60, 900),
        (230,),
    ),
    Line(
        "power-supplies",
        "Phoenix Contact",
        "QUINT4-PS",
        "{m} {s} {output_v}V {power_w}W Power Supply, {mounting}",
        _PSU,
        (250, 2400),
        (230, 400),
    ),
    Line(
        "power-supplies",
        "Omron",
        "S8VK",
        "{m} {s} {power_w}W {output_v}V Power Supply",
        _PSU,
        (120, 1300),
        (230,),
    ),
    Line(
        "meters",
        "Carlo Gavazzi",
        "EM24",
        "{m} {s} {phases}-Phase Energy Meter {max_current_a}A {interface}",
        _METER,
        (260, 1400),
        (230, 400),
    ),
    Line(
        "meters",
        "F&F",
        "LE-01",
        "{m} {s} {phases}-Phase Energy Meter {max_current_a}A Class {accuracy_class}",
        _METER,
        (90, 700),
        (230, 400),
    ),
    Line(
        "meters",
        "Eaton",
        "DEM",
        "{m} {s} Energy Meter {phases}P {max_current_a}A {interface}",
        _METER,
        (180, 1100),
        (230, 400),
    ),
)

VARIANTS_PER_LINE = 64  # distinct spec combinations drawn per line (fewer when the line has fewer)
DESCRIPTIONS = {
    "cables": "Copper conductor cable for fixed and flexible installation.",
    "circuit-breakers": "Protects circuits against overload and short circuit. DIN rail mounting.",
    "fuses": "Fuse link for cable and equipment protection.",
    "switches": "Flush-mounted wiring device with screwless terminals.",
    "sockets": "Socket outlet with child protection shutters.",
    "relays": "Electromechanical relay for control circuits.",
    "contactors": "AC-3 rated contactor for motor control.",
    "transformers": "Single-phase control and safety transformer.",
    "resistors": "Resistor for general purpose electronics.",
    "capacitors": "Capacitor for filtering and decoupling.",
    "connectors": "Connector for quick and safe wiring.",
    "lighting": "Energy-efficient LED luminaire.",
    "sensors": "Industrial sensor with LED status indicator.",
    "power-supplies": "Switched-mode power supply with overload protection.",
    "meters": "MID certified energy meter for sub-metering.",
}


def _number(value):
    """Spec numbers as JSON would want them: 16 not 16.0, 1.5 stays 1.5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass(frozen=True)
class Catalogue:
    """The variants (grouped by category, in a fixed order) and how to pick one fairly.

    `slot_first`/`slot_count` have one entry per percent of the catalogue: a component
    draws a slot (its category, weighted by share), then a variant inside that category."""

    variants: list[dict]
    slot_first: list[int]
    slot_count: list[int]


@cache
def build_catalogue(seed: int) -> Catalogue:
    """Every sellable variant, deterministic for a seed (built once per seed; do not mutate)."""
    rng = random.Random(f"volt-catalogue-{seed}")
    variants: list[dict] = []
    span: dict[str, tuple[int, int]] = {}
    for category in CATEGORIES:
        first = len(variants)
        for line in (line for line in LINES if line.category == category):
            variants.extend(_line_variants(line, rng))
        span[category] = (first, len(variants) - first)
    slot_first, slot_count = [], []
    for category, (_, share) in CATEGORIES.items():
        slot_first += [span[category][0]] * share
        slot_count += [span[category][1]] * share
    assert len(slot_first) == 100, "category shares must add up to 100"
    return Catalogue(variants, slot_first, slot_count)


def _line_variants(line: Line, rng: random.Random) -> list[dict]:
    """Up to VARIANTS_PER_LINE distinct spec combinations of a line."""
    code, _ = CATEGORIES[line.category]
    seen: set[tuple] = set()
    drawn: list[dict] = []
    for _ in range(VARIANTS_PER_LINE * 4):
        if len(drawn) == VARIANTS_PER_LINE:
            break
        picks = {k: rng.randrange(len(v)) for k, v in line.specs.items()}
        key = tuple(picks.values())
        if key in seen:
            continue
        seen.add(key)
        specs = {k: _number(line.specs[k][i]) for k, i in picks.items()}
        # Bigger ratings (later options) cost more; log scale within the line's range.
        size = sum(i / max(1, len(line.specs[k]) - 1) for k, i in picks.items()) / len(picks)
        lo, hi = line.price_pln
        price = round(lo * (hi / lo) ** (0.7 * size + 0.3 * rng.random()), 2)
        name = line.template.format(m=line.manufacturer, s=line.series, **specs)
        drawn.append(
            {
                "category": line.category,
                "category_code": code,
                "manufacturer": line.manufacturer,
                "manufacturer_code": MANUFACTURERS[line.manufacturer],
                "name": name,
                "description": f"{name}. {DESCRIPTIONS[line.category]}",
                "specs": specs,
                "price_pln": max(price, 0.01),
                "voltage_rating": rng.choice(line.voltages),
            }
        )
    return drawn

"""The shop's customers: countries, given names and family names with their real spelling
(Łukasz Wójcik, José Álvarez, Zoë Brontë, Олена Шевченко), and the ASCII forms emails use.

Volt is a Polish shop: most customers are Polish, the rest from the neighbourhood and beyond.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Letters NFKD does not decompose into ASCII.
_FOLD = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "đ": "d",
        "Đ": "D",
        "ı": "i",
        "œ": "oe",
        "þ": "th",
        "ð": "d",
    }
)
# Cyrillic to Latin for email addresses (simplified Ukrainian romanisation).
_CYRILLIC = dict(
    zip(
        "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",
        [
            "a",
            "b",
            "v",
            "h",
            "g",
            "d",
            "e",
            "ie",
            "zh",
            "z",
            "y",
            "i",
            "i",
            "i",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "shch",
            "",
            "iu",
            "ia",
        ],
    )
)


def ascii_fold(text: str) -> str:
    """`Łukasz Wójcik` -> `lukasz wojcik`: lower-case ASCII letters for an email address."""
    text = "".join(_CYRILLIC.get(ch, ch) for ch in text.lower().translate(_FOLD))
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(
        ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch in " -'")
    ).replace("'", "")


@dataclass(frozen=True)
class Country:
    code: str
    weight: int  # share of customers, in percent
    given: tuple[str, ...]
    family: tuple[str, ...]
    domains: tuple[str, ...]


COUNTRIES: tuple[Country, ...] = (
    Country(
        "PL",
        58,
        (
            "Łukasz",
            "Małgorzata",
            "Paweł",
            "Agnieszka",
            "Michał",
            "Katarzyna",
            "Grzegorz",
            "Żaneta",
            "Krzysztof",
            "Joanna",
            "Wojciech",
            "Zofia",
            "Tomasz",
            "Anna",
            "Jędrzej",
            "Bożena",
            "Piotr",
            "Ewa",
            "Stanisław",
            "Urszula",
            "Maciej",
            "Dorota",
            "Jakub",
            "Weronika",
        ),
        (
            "Wójcik",
            "Nowak",
            "Kowalczyk",
            "Woźniak",
            "Mazur",
            "Krawczyk",
            "Kaczmarek",
            "Zając",
            "Król",
            "Wróbel",
            "Dudek",
            "Pawlak",
            "Sikora",
            "Baran",
            "Duda",
            "Jabłoń",
            "Michalak",
            "Gołąb",
            "Żak",
            "Szewczyk",
            "Łuczak",
            "Kozioł",
            "Błaszczyk",
            "Kępa",
        ),
        (
            "wp.pl",
            "onet.pl",
            "o2.pl",
            "interia.pl",
            "gmail.com",
            "elektro-serwis.pl",
            "instal-bud.com.pl",
        ),
    ),
    Country(
        "DE",
        9,
        (
            "Jürgen",
            "Lena",
            "Björn",
            "Käthe",
            "Matthias",
            "Sophie",
            "Günther",
            "Jörg",
            "Anke",
            "Maximilian",
        ),
        (
            "Müller",
            "Schäfer",
            "Weiß",
            "Groß",
            "Köhler",
            "Schmidt",
            "Bäcker",
            "Fuchs",
            "Hoffmann",
            "Krüger",
        ),
        ("gmx.de", "web.de", "t-online.de", "gmail.com"),
    ),
    Country(
        "CZ",
        5,
        ("Jiří", "Tereza", "Ondřej", "Kateřina", "Tomáš", "Lucie", "Radek", "Šárka"),
        ("Dvořák", "Novák", "Černý", "Procházka", "Kučera", "Veselý", "Růžička", "Hájek"),
        ("seznam.cz", "email.cz", "centrum.cz"),
    ),
    Country(
        "UA",
        6,
        ("Олена", "Тарас", "Оксана", "Андрій", "Ірина", "Богдан", "Yuliia", "Dmytro"),
        (
            "Шевченко",
            "Коваленко",
            "Бондаренко",
            "Ткаченко",
            "Kravchenko",
            "Melnyk",
            "Мельник",
            "Бойко",
        ),
        ("ukr.net", "gmail.com", "i.ua"),
    ),
    Country(
        "ES",
        4,
        ("José", "María", "Íñigo", "Nuria", "Andrés", "Begoña", "Raúl", "Inés"),
        ("Álvarez", "Fernández", "Muñoz", "Sánchez", "Peña", "Gómez", "Ibáñez", "Martín"),
        ("gmail.com", "hotmail.es", "telefonica.net"),
    ),
    Country(
        "FR",
        4,
        ("Zoë", "Hélène", "François", "Chloé", "Loïc", "Gaëlle", "Jérôme", "Noël"),
        ("Lefèvre", "Dubois", "Gauthier", "Girard", "Mercier", "Lemaître", "Bérard", "Rousseau"),
        ("orange.fr", "free.fr", "laposte.net"),
    ),
    Country(
        "GB",
        4,
        ("Zoë", "Oliver", "Siobhán", "Seán", "Amelia", "Harry", "Niamh", "Chloë"),
        ("O'Brien", "Smith", "Brontë", "Jones", "Taylor", "Ó Súilleabháin", "Williams", "Clarke"),
        ("gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"),
    ),
    Country(
        "SE",
        3,
        ("Åsa", "Björn", "Märta", "Søren", "Linnéa", "Örjan"),
        ("Åberg", "Lindström", "Ødegaard", "Sjöberg", "Nyström", "Björk"),
        ("telia.com", "gmail.com", "outlook.com"),
    ),
    Country(
        "TR",
        2,
        ("Çağlar", "Şule", "Gökhan", "Ayşe", "İbrahim", "Özlem"),
        ("Öztürk", "Yılmaz", "Şahin", "Çelik", "Doğan", "Kılıç"),
        ("gmail.com", "hotmail.com"),
    ),
    Country(
        "VN",
        2,
        ("Hương", "Minh", "Thảo", "Đức", "Phương", "Quỳnh"),
        ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ"),
        ("gmail.com", "yahoo.com"),
    ),
    Country(
        "US",
        3,
        ("Emily", "Michael", "Zoë", "D'Andre", "Mary-Kate", "José"),
        ("Johnson", "García", "O'Connor", "Nguyen", "Smith-Jones", "Rodríguez"),
        ("gmail.com", "yahoo.com", "outlook.com", "icloud.com"),
    ),
)


@dataclass(frozen=True)
class People:
    """Arrays the SQL generator indexes: one entry per country in `countries`, and a 100-slot
    table mapping a percent to a country index, so countries follow their weights."""

    countries: list[str]
    given: list[list[str]]
    given_ascii: list[list[str]]
    family: list[list[str]]
    family_ascii: list[list[str]]
    domains: list[list[str]]
    slots: list[int]


def email_part(name: str) -> str:
    return ascii_fold(name).replace(" ", "").replace("-", "") or "user"


def build_people() -> People:
    slots: list[int] = []
    for i, country in enumerate(COUNTRIES):
        slots += [i] * country.weight
    assert len(slots) == 100, "country weights must add up to 100"
    # SQL arrays must be rectangular: pad each country's list by repeating it.
    width = max(max(len(c.given), len(c.family), len(c.domains)) for c in COUNTRIES)

    def pad(values) -> list[str]:
        return [values[i % len(values)] for i in range(width)]

    return People(
        countries=[c.code for c in COUNTRIES],
        given=[pad(c.given) for c in COUNTRIES],
        given_ascii=[pad([email_part(n) for n in c.given]) for c in COUNTRIES],
        family=[pad(c.family) for c in COUNTRIES],
        family_ascii=[pad([email_part(n) for n in c.family]) for c in COUNTRIES],
        domains=[pad(c.domains) for c in COUNTRIES],
        slots=slots,
    )

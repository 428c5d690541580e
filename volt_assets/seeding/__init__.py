"""The Volt demo shop generator: catalogue, customers, orders, a shop's life and its dirt.

Public API (the CLI `volt-assets seed`, the demo and the tests use only these):
- `SeedOptions`: what to generate (sizes, window, dirt rate, seed, pictures, reset);
- `seed_shop(conn, options, images_dir=None) -> SeedReport`;
- `SourceNotEmpty`: raised when the tables hold rows and no reset was asked for;
- `dirt_catalogue()`: the kinds of dirt per table.
"""

from volt_assets.seeding.shop import (
    SeedOptions,
    SeedReport,
    SourceNotEmpty,
    default_images_dir,
    dirt_catalogue,
    seed_shop,
)

__all__ = [
    "SeedOptions",
    "SeedReport",
    "SourceNotEmpty",
    "default_images_dir",
    "dirt_catalogue",
    "seed_shop",
]

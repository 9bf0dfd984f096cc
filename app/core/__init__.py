"""The bottom layer: concepts every area uses (money, regions and tax ids, the tenant's clock,
storage, transaction hooks, bulk writing, page helpers). Nothing here imports an area."""

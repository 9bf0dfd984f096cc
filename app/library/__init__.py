"""The template library: global milestone-plan templates shipped with the product."""

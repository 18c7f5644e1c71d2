"""Readable class names of public benchmarks whose folder or label names are not prompts.

EuroSAT and GTSRB names follow CLIP's zero-shot evaluation (Radford et al., 2021).
"""

from __future__ import annotations

EUROSAT = {
    "AnnualCrop": "annual crop land",
    "Forest": "forest",
    "HerbaceousVegetation": "brushland or shrubland",
    "Highway": "highway or road",
    "Industrial": "industrial buildings or commercial buildings",
    "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings or homes or apartments",
    "River": "river",
    "SeaLake": "lake or sea",
}

_RWC = "red and white circle"
_RWT = "red and white triangle"
_BC = "blue circle with white"
GTSRB = [
    *(f"{_RWC} {v} kph speed limit" for v in (20, 30, 50, 60, 70, 80)),
    "end / de-restriction of 80 kph speed limit",
    f"{_RWC} 100 kph speed limit",
    f"{_RWC} 120 kph speed limit",
    f"{_RWC} red car and black car no passing",
    f"{_RWC} red truck and black car no passing",
    f"{_RWT} road intersection warning",
    "white and yellow diamond priority road",
    "red and white upside down triangle yield right-of-way",
    "stop",
    f"empty {_RWC}",
    f"{_RWC} no truck entry",
    "red circle with white horizonal stripe no entry",
    f"{_RWT} with exclamation mark warning",
    f"{_RWT} with black left curve approaching warning",
    f"{_RWT} with black right curve approaching warning",
    f"{_RWT} with black double curve approaching warning",
    f"{_RWT} rough / bumpy road warning",
    f"{_RWT} car skidding / slipping warning",
    f"{_RWT} with merging / narrow lanes warning",
    f"{_RWT} with person digging / construction / road work warning",
    f"{_RWT} with traffic light approaching warning",
    f"{_RWT} with person walking warning",
    f"{_RWT} with child and person walking warning",
    f"{_RWT} with bicyle warning",
    f"{_RWT} with snowflake / ice warning",
    f"{_RWT} with deer warning",
    "white circle with gray strike bar no speed limit",
    f"{_BC} right turn arrow mandatory",
    f"{_BC} left turn arrow mandatory",
    f"{_BC} forward arrow mandatory",
    f"{_BC} forward or right turn arrow mandatory",
    f"{_BC} forward or left turn arrow mandatory",
    f"{_BC} keep right arrow mandatory",
    f"{_BC} keep left arrow mandatory",
    f"{_BC} arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
]

DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


def known_folder_names(dataset: str | None, folders: list[str]) -> list[str] | None:
    """Readable names for a known dataset's class folders (EuroSAT's; ImageNet's for WordNet
    id or ImageNet-V2 index folders), or None when unknown."""
    from app.imagedata.imagenet import imagenet_folder_names

    if dataset == "eurosat" and set(folders) <= set(EUROSAT):
        return [EUROSAT[f] for f in folders]
    return imagenet_folder_names(dataset, folders)

"""`reflectchat presets`: the writing presets `--preset NAME` can name, built-in and the config
file's [presets.NAME] tables."""

from __future__ import annotations

import argparse

from reflectchat.cli.tables import Column, print_table
from reflectchat.core.chat.export import to_json
from reflectchat.core.chat.presets import all_presets
from reflectchat.core.config import ConfigError, load_config
from reflectchat.core.errors import UsageError


def run_presets(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    presets = all_presets(config.presets)
    if args.json:
        print(
            to_json(
                {
                    "presets": [
                        {
                            "name": p.name,
                            "source": p.source,
                            "description": p.description,
                            "temperature": p.temperature,
                            "top_p": p.top_p,
                            "system": p.system,
                        }
                        for p in presets.values()
                    ]
                }
            )
        )
        return 0

    def sampling(temperature: float | None, top_p: float | None) -> str:
        parts = [f"temperature {temperature:g}" if temperature is not None else ""]
        parts.append(f"top-p {top_p:g}" if top_p is not None else "")
        return ", ".join(p for p in parts if p) or "the model's"

    print_table(
        [Column("name"), Column("from"), Column("sampling"), Column("what it asks for", wrap=True)],
        [
            [p.name, p.source, sampling(p.temperature, p.top_p), p.description or p.system]
            for p in presets.values()
        ],
    )
    return 0

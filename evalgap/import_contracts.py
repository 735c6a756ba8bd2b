"""The `allowed` contract type of .importlinter (lint-imports loads it; nothing at run time does).

DESIGN.md's table says what each app MAY import; this contract says it the same way round: the
source package may import (directly) the listed modules of ours and no other. So an app added
later is closed to every existing app without editing their contracts, and a contract reads like
the table. Entries are package names (`core`: the package and everything in it) or patterns with
`*` (one name) and `**` (one or more), e.g. `*.selectors` for "the selectors of any app".
"""
from __future__ import annotations

import re

from importlinter import Contract, ContractCheck, fields, output


def _pattern(expression: str) -> re.Pattern:
    if "*" not in expression:
        return re.compile(re.escape(expression) + r"(\..+)?")
    parts = [r"[^.]+" if p == "*" else r".+" if p == "**" else re.escape(p) for p in expression.split(".")]
    return re.compile(r"\.".join(parts))


class AllowedContract(Contract):
    type_name = "allowed"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_modules = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:
        allowed = [_pattern(e) for e in (self.allowed_modules or [])]
        broken = []
        for source in self.source_modules:
            if source not in graph.modules:
                raise ValueError(f"contract {self.name!r}: no package {source!r} among the root packages")
            inside = _pattern(source)
            for importer in sorted({source, *graph.find_descendants(source)}):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if inside.fullmatch(imported) or any(p.fullmatch(imported) for p in allowed):
                        continue
                    lines = sorted(d["line_number"] for d in graph.get_import_details(importer=importer,
                                                                                       imported=imported))
                    broken.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(f"may import only {', '.join(self.allowed_modules or ['nothing of ours'])}:")
        output.new_line()
        for b in check.metadata["broken"]:
            output.indent_cursor()
            output.print_error(f"{b['importer']} -> {b['imported']} (l.{', '.join(map(str, b['lines']))})",
                               bold=False)
        output.new_line()

"""A fake Materials Project API on 127.0.0.1 for tests: enough for mp-api's `MPRester`.

It speaks what mp-api 0.46 sends and expects (read from its source):
- `GET /heartbeat` -> {"db_version", "access_controlled_batch_ids", "version"} (no key needed);
- `GET /materials/summary/` with the key in the `x-api-key` header, filters
  (`material_ids` comma-joined, `nelements_min/max`, ...), `_fields` or `_all_fields`,
  and paging by `_limit`/`_skip` (or `_page`/`_per_page`) -> {"data": [...], "meta": {"total_doc"}};
- errors as {"detail": "..."} with the status code (401 for an unknown key).

`drop_after = n` makes it close the connection without an answer on every summary request
after the n-th, as a network failure mid-download would.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

SUMMARY = "/materials/summary/"


class FakeMP:
    def __init__(self, docs: list[dict[str, Any]], api_key: str, reject_status: int = 401) -> None:
        self.docs = docs
        self.api_key = api_key
        self.reject_status = reject_status
        self.drop_after: int | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, params) of every request
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> "FakeMP":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, path: str = SUMMARY) -> int:
        return sum(p == path for p, _ in self.requests)

    def summary_requests(self) -> list[dict[str, str]]:
        return [params for p, params in self.requests if p == SUMMARY]

    # ------------------------------------------------------------------ answering

    def answer(self, path: str, params: dict[str, str], key: str | None) -> tuple[int, Any]:
        if path == "/heartbeat":
            return 200, {"db_version": "2025.01.01", "access_controlled_batch_ids": [], "version": "0.87.3"}
        if path != SUMMARY:
            return 404, {"detail": "Not Found"}
        if key != self.api_key:
            return self.reject_status, {"detail": "Invalid or missing API key"}
        docs = [d for d in self.docs if _matches(d, params)]
        if "_page" in params:
            per_page = int(params.get("_per_page") or params.get("_limit") or 100)
            skip, limit = (int(params["_page"]) - 1) * per_page, per_page
        else:
            skip, limit = int(params.get("_skip", 0)), int(params.get("_limit", 100))
        page = docs[skip : skip + limit]
        if params.get("_fields") and params.get("_all_fields", "").lower() != "true":
            wanted = params["_fields"].split(",")
            page = [{k: d[k] for k in wanted if k in d} for d in page]
        return 200, {"data": page, "meta": {"total_doc": len(docs), "max_limit": 1000}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.requests.append((url.path, params))
                    served = fake.count(SUMMARY)
                if url.path == SUMMARY and fake.drop_after is not None and served > fake.drop_after:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
                    return
                status, body = fake.answer(url.path, params, self.headers.get("x-api-key"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        return Handler


def _matches(doc: dict[str, Any], params: dict[str, str]) -> bool:
    if "material_ids" in params and doc["material_id"] not in params["material_ids"].split(","):
        return False
    for name, value in params.items():
        if name.endswith("_min") and doc.get(name[:-4]) is not None and doc[name[:-4]] < float(value):
            return False
        if name.endswith("_max") and doc.get(name[:-4]) is not None and doc[name[:-4]] > float(value):
            return False
    return True


def summary_doc(
    material_id: str,
    structure,
    band_gap: float,
    k_vrh: float | None,
    g_vrh: float | None,
    e_above_hull: float,
    crystal_system: str,
    number: int,
    icsd: list[str] = (),
) -> dict[str, Any]:
    """A document shaped like emmet-core's SummaryDoc (the fields the harness reads and a few more)."""
    return {
        "material_id": material_id,
        "structure": structure.as_dict(),
        "formula_pretty": structure.composition.reduced_formula,
        "nelements": len(structure.composition.elements),
        "nsites": len(structure),
        "band_gap": band_gap,
        "is_metal": band_gap == 0,
        "bulk_modulus": None if k_vrh is None else {"voigt": k_vrh + 1, "reuss": k_vrh - 1, "vrh": k_vrh},
        "shear_modulus": None if g_vrh is None else {"voigt": g_vrh + 1, "reuss": g_vrh - 1, "vrh": g_vrh},
        "energy_above_hull": e_above_hull,
        "symmetry": {"crystal_system": crystal_system, "number": number, "symbol": "?", "point_group": "?"},
        "database_IDs": {"icsd": list(icsd)},
        "deprecated": False,
    }


__all__ = ["FakeMP", "summary_doc", "SUMMARY"]

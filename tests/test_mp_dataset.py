"""The `mp` dataset end to end through mp-api's MPRester against a fake MP API on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
from pymatgen.core import Lattice, Structure

from fakemp import FakeMP, summary_doc
from harness.sdk.api import LoadContext
from harness.services.errors import UserError
from harness_plugins.datasets import mp
from harness_plugins.datasets.mp import MPDataset, fetch

KEY = "k" * 32  # mp-api insists on 32 characters
LOCAL = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def local_network_only(monkeypatch):
    """Fail any attempt of mp-api (or anything) to reach a host other than this machine."""
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOCAL:
            raise AssertionError(f"tried to reach {address}")
        return connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL:
            raise AssertionError(f"tried to resolve {host}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("MP_API_KEY", KEY)


def structures():
    cscl = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    mg = Structure(Lattice.hexagonal(3.2, 5.2), ["Mg", "Mg"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
    return [cscl, po, mg]


def make_docs(n: int = 10):
    docs = []
    for i in range(1, n + 1):
        s = structures()[i % 3]
        system, number = ("Hexagonal", 194) if i % 3 == 2 else ("Cubic", 221)
        k = None if i % 4 == 0 else 50.0 + i
        docs.append(
            summary_doc(
                f"mp-{i}",
                s,
                band_gap=0.5 * (i % 2),
                k_vrh=k,
                g_vrh=20.0 + i,
                e_above_hull=0.01 * i,
                crystal_system=system,
                number=number,
                icsd=[f"icsd-{i}"],
            )
        )
    return docs


@pytest.fixture
def server():
    with FakeMP(make_docs(), KEY) as fake:
        yield fake


def dataset(server, **params) -> MPDataset:
    return MPDataset(endpoint=server.endpoint, **{"chunk_size": 4, **params})


def test_load_downloads_in_chunks_and_names_props_as_tasks_read_them(server, tmp_path):
    materials = dataset(server).load(LoadContext(tmp_path))
    assert [m.id for m in materials] == [f"mp-{i}" for i in range(1, 11)]
    by_id = {m.id: m for m in materials}
    p = by_id["mp-5"].props
    assert p == {
        "band_gap": 0.5,
        "is_metal": False,
        "k_vrh": 55.0,
        "g_vrh": 25.0,
        "e_above_hull": pytest.approx(0.05),
        "crystal_system": "Hexagonal",
        "spacegroup": 194,
        "formula": "Mg",
        "icsd_ids": ["icsd-5"],
    }
    assert by_id["mp-4"].props["k_vrh"] is None  # no elastic data
    assert by_id["mp-3"].structure == structures()[0]
    fetched = [r for r in server.summary_requests() if "material_ids" in r]
    assert [len(r["material_ids"].split(",")) for r in fetched] == [4, 4, 2]


def test_a_later_load_reads_the_cache_without_network_or_key(server, tmp_path, monkeypatch):
    first = dataset(server).load(LoadContext(tmp_path))
    before = len(server.requests)
    monkeypatch.delenv("MP_API_KEY")
    again = MPDataset(endpoint=server.endpoint, chunk_size=4).load(LoadContext(tmp_path))
    assert len(server.requests) == before
    assert [(m.id, m.structure, dict(m.props)) for m in again] == [(m.id, m.structure, dict(m.props)) for m in first]


def test_resume_after_a_dropped_connection_fetches_only_missing_chunks(server, tmp_path):
    server.drop_after = 2  # the id listing and one chunk succeed, then the network fails
    with pytest.raises(UserError, match="interrupted after 1 of 3 chunks.*run again to resume"):
        dataset(server).load(LoadContext(tmp_path))
    server.drop_after = None
    server.requests.clear()
    materials = dataset(server).load(LoadContext(tmp_path))
    assert len(materials) == 10
    resumed = server.summary_requests()
    assert len(resumed) == 2 and all("material_ids" in r for r in resumed)  # no second listing
    assert [r["material_ids"] for r in resumed] == ["mp-5,mp-6,mp-7,mp-8", "mp-9,mp-10"]


def test_fetch_reports_what_it_downloaded_and_what_was_cached(server, tmp_path):
    ds = dataset(server)
    first = fetch(ds, LoadContext(tmp_path))
    assert (first.materials, first.chunks, first.downloaded, first.cached) == (10, 3, 3, 0)
    assert first.db_version == "2025.01.01"
    second = fetch(ds, LoadContext(tmp_path))
    assert (second.downloaded, second.cached) == (0, 3)
    assert "10 materials" in str(second)


def test_criteria_and_limit_shape_the_query(server, tmp_path):
    materials = dataset(server, criteria={"num_elements": [2, 2]}).load(LoadContext(tmp_path))
    assert {m.structure.composition.reduced_formula for m in materials} == {"CsCl"}
    listing = server.summary_requests()[0]
    assert (listing["nelements_min"], listing["nelements_max"]) == ("2", "2")
    limited = dataset(server, limit=4).load(LoadContext(tmp_path))
    assert len(limited) == 4


def test_limit_downloads_a_seeded_stratified_sample_not_the_first_materials(tmp_path):
    docs = make_docs(60)  # band gap 0 (metal) for even ids: half metals
    for d in docs[:20]:  # the first 20 listed all metals, as a sorted export would be
        d["band_gap"], d["is_metal"] = 0.0, True
    with FakeMP(docs, KEY) as fake:

        def draw(seed, folder):
            return MPDataset(
                endpoint=fake.endpoint, chunk_size=50, limit=30, stratify="is_metal", sample_seed=seed
            ).load(LoadContext(tmp_path / folder))

        a, again, other = draw(0, "a"), draw(0, "b"), draw(1, "c")
        fetched = [r for r in fake.summary_requests() if "material_ids" in r]
    whole = sum(d["is_metal"] for d in docs) / len(docs)  # 40 of 60
    assert sum(m.props["is_metal"] for m in a) / len(a) == pytest.approx(whole, abs=0.01)
    assert [m.id for m in a] == [m.id for m in again]  # seeded
    assert [m.id for m in a] != [m.id for m in other]
    assert [m.id for m in a] != [f"mp-{i}" for i in range(1, 31)]
    assert all(len(r["material_ids"].split(",")) == 30 for r in fetched)  # only the sample is downloaded


def test_fraction_samples_and_a_full_download_keeps_its_cache_folder(server, tmp_path):
    ctx = LoadContext(tmp_path)
    assert len(dataset(server, fraction=0.5).load(ctx)) == 5
    assert mp.cache_folder(dataset(server), ctx) != mp.cache_folder(dataset(server, fraction=0.5), ctx)
    assert "sample" not in mp._query_params(dataset(server))  # folders of earlier full downloads stay valid


def test_an_unknown_stratify_field_or_a_bad_fraction_is_a_user_error(server, tmp_path):
    with pytest.raises(UserError, match="stratify = 'colour' is not a summary field"):
        dataset(server, limit=3, stratify="colour").load(LoadContext(tmp_path))
    with pytest.raises(UserError, match=r"fraction = 1.5 must be in \(0, 1\]"):
        dataset(server, fraction=1.5)


def test_the_id_listing_pages_through_large_results(server, tmp_path, monkeypatch):
    monkeypatch.setattr(mp, "ID_PAGE", 4)
    materials = dataset(server).load(LoadContext(tmp_path))
    assert len(materials) == 10
    listing = [r for r in server.summary_requests() if "material_ids" not in r]
    assert [r.get("_skip", "0") for r in listing] == ["0", "4", "8"]


def test_extra_fields_are_kept_under_their_own_names(server, tmp_path):
    fields = [*mp.DEFAULT_FIELDS, "nsites"]
    materials = dataset(server, fields=fields).load(LoadContext(tmp_path))
    assert materials[0].props["nsites"] == len(materials[0].structure)


def test_missing_key_is_a_user_error_before_any_request(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MP_API_KEY")
    with pytest.raises(UserError, match=r"set MP_API_KEY or \[dataset\] api_key"):
        dataset(server).load(LoadContext(tmp_path))
    assert server.requests == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_a_user_error_naming_it(tmp_path, status):
    with FakeMP(make_docs(), KEY, reject_status=status) as fake:
        with pytest.raises(UserError, match=rf"rejected the API key from \[dataset\] api_key \(HTTP {status}\)"):
            MPDataset(endpoint=fake.endpoint, api_key="x" * 32).load(LoadContext(tmp_path))


def test_a_malformed_key_is_a_user_error(server, tmp_path):
    with pytest.raises(UserError, match="MP_API_KEY"):
        MPDataset(endpoint=server.endpoint, api_key="short").load(LoadContext(tmp_path))


def test_an_unreachable_endpoint_is_a_user_error(tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match="cannot reach the Materials Project"):
        MPDataset(endpoint=f"http://127.0.0.1:{port}/").load(LoadContext(tmp_path))


def test_the_key_never_shows_in_titles_or_reprs(server):
    ds = MPDataset(api_key="s" * 32, endpoint=server.endpoint)
    assert "sss" not in ds.title and "sss" not in repr(ds)


def test_registered_and_created_from_toml_parameters(server):
    from harness.services.registry import load

    ds = load().create("dataset", "mp", {"endpoint": server.endpoint, "criteria": {"num_elements": [1, 2]}, "limit": 3})
    assert isinstance(ds, MPDataset) and ds.limit == 3 and ds.fields == list(mp.DEFAULT_FIELDS)


@pytest.mark.parametrize(
    "params, match",
    [({"criteria": {"no_such_filter": 1}}, "criteria"), ({"fields": ["no_such_field"]}, "fields")],
)
def test_a_query_mp_api_refuses_is_a_user_error(server, tmp_path, params, match):
    with pytest.raises(UserError, match=match) as info:
        dataset(server, **params).load(LoadContext(tmp_path))
    assert "\x1b" not in str(info.value)


def test_documents_missing_from_a_chunk_are_counted_as_skipped(server, tmp_path):
    ds = dataset(server)
    fetch(ds, LoadContext(tmp_path))  # lists all ten ids
    (mp.cache_folder(ds, LoadContext(tmp_path)) / "chunk-00001.jsonl.gz").unlink()
    server.docs = [d for d in server.docs if d["material_id"] != "mp-6"]  # gone since the listing
    ctx = LoadContext(tmp_path)
    materials = ds.load(ctx)
    assert len(materials) == 9 and "mp-6" not in {m.id for m in materials}
    assert ctx.skipped == {"listed but not returned by the Materials Project": 1}


def test_harness_fetch_mp_fills_the_cache_from_the_command_line(server, tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    args = ["fetch", "mp", "--set", f"endpoint={server.endpoint!r}".replace("'", '"'), "--set", "chunk_size=4"]
    assert main(args) == 0
    assert "10 materials in 3 chunks (3 downloaded now" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 downloaded now, 3 already cached" in capsys.readouterr().out
    monkeypatch.delenv("MP_API_KEY")
    assert main(["fetch", "demo"]) == 2
    assert "nothing to fetch" in capsys.readouterr().err

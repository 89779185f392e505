"""Price sets (one market, date and source each) and the GPUs issue 17 adds to the catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.core.cost import estimate_inference_cost, estimate_training_cost
from vramcalc.errors import PresetError
from vramcalc.sources import presets
from vramcalc.sources.presets import get_gpu, list_gpus, price_set, use_gpus_file, use_price_source
from vramcalc.units import GIB

runner = CliRunner()


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv(presets.GPUS_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    use_gpus_file(None)
    use_price_source(None)
    yield
    use_gpus_file(None)
    use_price_source(None)


def test_default_set_is_one_market_one_date() -> None:
    priced = [g for g in list_gpus() if g.usd_per_gpu_hour is not None]
    assert len(priced) >= 10
    assert {g.price_market for g in priced} == {"on-demand"}
    assert {g.price_date for g in priced} == {"2026-03-10"}
    assert all("deploybase.ai" in g.price_source for g in priced)
    # the marketplace mix of issue 17 is gone: no community price beside an on-demand one
    assert get_gpu("v100-32gb").usd_per_gpu_hour is None
    assert get_gpu("h100").usd_per_gpu_hour == 4.76  # RunPod on-demand H100 SXM, 2026-03-10


@pytest.mark.parametrize(
    ("source", "gpu", "usd", "market"),
    [
        ("runpod-spot", "h100", 2.69, "spot"),  # same table, Spot/hr column
        ("runpod-on-demand", "a100-80gb", 2.45, "on-demand"),
        ("aws-on-demand", "a10g", 1.006, "on-demand"),  # g5.xlarge, us-east-1, June 2026
    ],
)
def test_price_sources(source: str, gpu: str, usd: float, market: str) -> None:
    use_price_source(source)
    g = get_gpu(gpu)
    assert g.usd_per_gpu_hour == usd and g.price_market == market and g.price_date
    result = runner.invoke(app, ["gpus", "--price-source", source, "--json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)["gpus"]}
    assert rows[g.name]["usd_per_gpu_hour"] == usd


def test_aws_set_prices_only_what_it_lists() -> None:
    use_price_source("aws-on-demand")
    assert get_gpu("h100").usd_per_gpu_hour is None


def test_user_price_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nmarket = "reserved"\nprovider = "ACME"\ndate = "2026-11-01"\n'
        'source = "our contract"\n[prices]\nh100 = 2.0\n'
    )
    before = path.read_text()
    data = json.loads(
        runner.invoke(
            app,
            ["cost", "infer", "llama-2-7b", "--gpu", "h100", "--price-source", str(path), "--json"],
        ).stdout  # fmt: skip
    )
    assert data["usd_per_gpu_hour"] == 2.0 and data["usd_per_hour"] == 2.0  # one GPU
    use_price_source(path)
    assert get_gpu("h100").price_market == "reserved"
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            'name = "x"\nmarket = "on-demand"\nprovider = "p"\nsource = "s"\n[prices]\nh100 = 1\n',
            "date",
        ),
        (
            'name = "x"\nmarket = "cheap"\nprovider = "p"\ndate = "2026-01-01"\nsource = "s"\n[prices]\n',
            "market",
        ),
        (
            'name = "x"\nmarket = "spot"\nprovider = "p"\ndate = "2026-01-01"\nsource = "s"\n[prices]\nh100 = inf\n',
            "finite",
        ),
        (
            'name = "x"\nmarket = "spot"\nprovider = "p"\ndate = "2026-01-01"\nsource = "s"\n[prices]\nh999 = 1\n',
            "h999",
        ),
    ],
)
def test_bad_price_file_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["gpus", "--price-source", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_unknown_price_set(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "gpt2", "--price-source", "nope"])
    assert exc.value.code == 2
    assert "runpod-on-demand" in capsys.readouterr().err
    with pytest.raises(PresetError):
        price_set("nope")


def test_user_gpu_file_price_is_marked_as_the_users(tmp_path: Path) -> None:
    path = tmp_path / "gpus.toml"
    path.write_text('[[gpu]]\nname = "h100"\nprice_usd_per_hour = 2.0\n')
    use_gpus_file(path)
    g = get_gpu("h100")
    assert g.usd_per_gpu_hour == 2.0 and g.price_market == "user" and str(path) in g.price_source


def test_gpus_table_says_market_date_and_set() -> None:
    out = runner.invoke(app, ["gpus"], env={"COLUMNS": "200"}).stdout
    assert "market" in out and "read" in out and "2026-03-10" in out
    assert "set 'runpod-on-demand'" in out and "no dated on-demand price in this set" in out


def test_plan_ranks_priced_rows_cheapest_first_then_unpriced() -> None:
    data = json.loads(runner.invoke(app, ["plan", "llama-2-7b", "--json"]).stdout)
    costs = [r["usd_per_million_output_tokens"] for r in data["rows"] if r["fits"]]
    priced = [c for c in costs if c is not None]
    assert priced == sorted(priced) and len(priced) >= 10
    assert costs[: len(priced)] == priced  # every unpriced row after every priced one
    assert data["price_set"] == "runpod-on-demand"
    table = runner.invoke(app, ["plan", "llama-2-7b", "--price-source", "runpod-spot"]).stdout
    assert "prices: set 'runpod-spot'" in table.replace("\n", " ")


# ---- the GPUs issue 17 adds -------------------------------------------------------------------
ADDED = [
    "rtx-4080", "rtx-4070-ti", "rtx-4060-ti-16gb", "rtx-3060-12gb", "rtx-a6000", "rtx-6000-ada",
    "a40", "a10", "l40", "h20", "h800", "a800", "gh200", "mi250x", "mi325x", "m4-max",
    "m4-pro", "m2-ultra",
]  # fmt: skip


@pytest.mark.parametrize("name", ADDED)
def test_added_gpu_has_a_source(name: str) -> None:
    g = get_gpu(name)
    assert "http" in g.source and g.vendor and g.memory_mib > 0


@pytest.mark.parametrize(("name", "ram_gib"), [("m4-max", 128), ("m4-pro", 64), ("m2-ultra", 192)])
def test_apple_unified_memory_is_labelled_with_its_share(name: str, ram_gib: int) -> None:
    g = get_gpu(name)
    assert "unified memory" in g.title and "UNIFIED MEMORY" in g.source
    # Metal's default GPU working set on machines above 36 GB: 75 % of RAM
    assert g.memory_bytes == ram_gib * GIB * 3 // 4
    assert g.peak_bf16_tflops is None  # Apple publishes no tensor peak: left unset


def test_mi250x_is_one_gcd() -> None:
    g = get_gpu("mi250x")
    # the 128 GB module is two 64 GB devices; 383 TFLOPS FP16 per module, 191.5 per GCD
    assert g.memory_bytes == 64 * GIB and g.peak_bf16_tflops == 383.0 / 2


def test_export_variants_keep_compute_and_cut_nvlink() -> None:
    assert get_gpu("h800").peak_bf16_tflops == get_gpu("h100-sxm").peak_bf16_tflops
    assert get_gpu("h800").interconnect_gbps == 400.0
    assert get_gpu("a800").peak_bf16_tflops == get_gpu("a100-80gb").peak_bf16_tflops
    assert get_gpu("a800").interconnect_gbps == 400.0


# ---- one price vocabulary: usd_per_gpu_hour (one GPU, one hour), usd_per_hour (all the job's GPUs)
def test_price_names_say_per_gpu_or_per_job() -> None:
    infer = estimate_inference_cost("llama-2-7b", gpu="h100", num_gpus=2, usd_per_gpu_hour=3.0)
    assert (infer.usd_per_gpu_hour, infer.usd_per_hour) == (3.0, 6.0)  # 2 GPUs × $3
    train = estimate_training_cost(
        "llama-2-7b", tokens="1B", gpu="h100", num_gpus=8, usd_per_gpu_hour=3.0
    )
    assert train.usd_per_gpu_hour == 3.0
    assert train.price_usd == pytest.approx(train.gpu_hours * 3.0, rel=1e-12)
    catalog = estimate_inference_cost("llama-2-7b", gpu="h100", num_gpus=4)
    # RunPod on-demand H100 SXM, $4.76 per GPU-hour (2026-03-10): 4 GPUs cost $19.04 an hour
    assert catalog.usd_per_gpu_hour == 4.76
    assert catalog.usd_per_hour == pytest.approx(19.04, rel=1e-12)


def test_gpu_file_reads_the_former_price_key(tmp_path: Path) -> None:
    new, old, both = tmp_path / "new.toml", tmp_path / "old.toml", tmp_path / "both.toml"
    new.write_text('[[gpu]]\nname = "h100"\nusd_per_gpu_hour = 2.5\n')
    old.write_text('[[gpu]]\nname = "h100"\nprice_usd_per_hour = 2.5\n')
    both.write_text('[[gpu]]\nname = "h100"\nusd_per_gpu_hour = 2.5\nprice_usd_per_hour = 2.5\n')
    for path in (new, old):
        use_gpus_file(path)
        g = get_gpu("h100")
        assert g.usd_per_gpu_hour == 2.5 and g.price_market == "user"
        assert "usd_per_gpu_hour" in g.model_dump() and "price_usd_per_hour" not in g.model_dump()
    use_gpus_file(both)
    with pytest.raises(PresetError, match="price_usd_per_hour"):
        get_gpu("h100")
    use_gpus_file(None)

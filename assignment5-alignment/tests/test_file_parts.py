"""A file moved as checked parts: split, stored as the parts arrive over several transfers, reassembled."""

import os

import pytest
from cs336_alignment.file_parts import assemble, split_file, store_arrived_parts


def test_parts_arriving_one_transfer_at_a_time_reassemble_the_file(tmp_path):
    original = tmp_path / "model.gguf"
    original.write_bytes(os.urandom(10_000))
    manifest = split_file(original, tmp_path / "carry", part_bytes=4096)
    assert [p["folder"] for p in manifest["parts"]] == ["part1", "part2", "part3"]
    assert (tmp_path / "carry/part3/model.gguf.part3").stat().st_size == 10_000 - 2 * 4096
    store = tmp_path / "there/parts"
    for arriving, still_missing in (("part1", ["part2", "part3"]), ("part3", ["part2"]), ("part2", [])):
        transfer = tmp_path / f"transfer_{arriving}"  # each call carries one part folder
        (transfer / arriving).mkdir(parents=True)
        name = f"model.gguf.{arriving}"
        (transfer / arriving / name).write_bytes((tmp_path / "carry" / arriving / name).read_bytes())
        assert store_arrived_parts(transfer, store, manifest) == still_missing
    out = assemble(store, manifest, tmp_path / "there/model.gguf")
    assert out.read_bytes() == original.read_bytes()


def test_a_damaged_part_or_a_wrong_reassembly_is_refused(tmp_path):
    original = tmp_path / "f.bin"
    original.write_bytes(os.urandom(3000))
    manifest = split_file(original, tmp_path / "carry", part_bytes=1000)
    damaged = tmp_path / "carry/part2/f.bin.part2"
    damaged.write_bytes(b"x" + damaged.read_bytes()[1:])
    with pytest.raises(ValueError, match="damaged"):
        store_arrived_parts(tmp_path / "carry", tmp_path / "store", manifest)
    swapped = dict(manifest, parts=[manifest["parts"][1], manifest["parts"][0], manifest["parts"][2]])
    split_file(original, tmp_path / "carry", part_bytes=1000)  # undamaged parts again
    store_arrived_parts(tmp_path / "carry", tmp_path / "store2", manifest)
    with pytest.raises(ValueError, match="do not reassemble"):
        assemble(tmp_path / "store2", swapped, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()

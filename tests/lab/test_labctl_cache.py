"""labctl's image cache holds every guest (no VM needed): building one guest's image prunes only that guest's
older images and its suite's older debootstrap trees, never the other guest's."""
import importlib.machinery
import importlib.util
import os

from labhelpers import C, LABCTL


def load_labctl():
    loader = importlib.machinery.SourceFileLoader("labctl_under_test", str(LABCTL))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_building_one_guest_never_prunes_the_other(tmp_path, monkeypatch):
    labctl = load_labctl()
    monkeypatch.setattr(C, "CACHE", tmp_path)
    names = ["image-debian13-1111111111111111", "image-debian13-2222222222222222",
             "image-debian12-3333333333333333", "stage1-trixie-4444444444444444", "stage1-trixie-5555555555555555",
             "stage1-bookworm-6666666666666666", "image-0123456789abcdef", "stage1-fedcba9876543210", "ssh"]
    for n in names:
        (tmp_path / n).mkdir()
    (tmp_path / "accel-probe.json").write_text("{}")
    gone = labctl.prune_cache("debian13", tmp_path / "image-debian13-2222222222222222",
                              tmp_path / "stage1-trixie-5555555555555555")
    assert gone == ["image-0123456789abcdef", "image-debian13-1111111111111111", "stage1-fedcba9876543210",
                    "stage1-trixie-4444444444444444"]
    assert sorted(os.listdir(tmp_path)) == ["accel-probe.json", "image-debian12-3333333333333333",
                                            "image-debian13-2222222222222222", "ssh", "stage1-bookworm-6666666666666666",
                                            "stage1-trixie-5555555555555555"]
    # and the other way round
    gone = labctl.prune_cache("debian12", tmp_path / "image-debian12-3333333333333333",
                              tmp_path / "stage1-bookworm-6666666666666666")
    assert gone == []
    assert (tmp_path / "image-debian13-2222222222222222").is_dir()


def test_each_guest_has_its_own_image_name_and_hash():
    a, b = C.image_dir(name="debian13"), C.image_dir(name="debian12")
    assert a.name.startswith("image-debian13-") and b.name.startswith("image-debian12-")
    assert C.image_hash("debian13") != C.image_hash("debian12")
    assert C.stage1_name("debian13").startswith("stage1-trixie-") and C.stage1_name("debian12").startswith("stage1-bookworm-")
    assert C.guests()[0] == C.DEFAULT_GUEST == "debian13"

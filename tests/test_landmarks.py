"""Hand landmarks: the atlas scheme and its bones, the network's heatmap decoding, the views it
trains and reads on, its training data, and `bone2gene train` with `trainer: landmarks`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from matcher.hand_scheme import BONE_NAMES, BONES, LANDMARK_NAMES, N_LANDMARKS, RAYS, RSNA_KEYPOINTS
from matcher.landmark_net import ABSENT, LandmarkNet, LandmarkNetConfig, decode_points, heatmap_loss, heatmap_targets
from matcher.landmarks import film_view, letterbox_matrix
from training.landmark_augment import ViewAugment, training_view
from training.landmark_data import phantom_films, phantom_points


def test_the_scheme_has_37_points_and_19_bones_joint_to_joint() -> None:
    assert N_LANDMARKS == len(LANDMARK_NAMES) == 37 and len(BONES) == 19 and len(set(BONE_NAMES)) == 19
    assert BONE_NAMES[:5] == ("MC1", "MC2", "MC3", "MC4", "MC5") and BONE_NAMES[-5:] == ("DP1", "DP2", "DP3", "DP4", "DP5")
    for bone in BONES:  # a bone's ends are neighbours on its ray, proximal first
        ray = RAYS[bone.ray]
        assert ray.index(bone.distal) == ray.index(bone.proximal) + 1
    shared = [(a.name, b.name) for a in BONES for b in BONES if a.distal == b.proximal]
    assert ("MC3", "PP3") in shared and ("MP3", "DP3") in shared and ("PP1", "DP1") in shared
    assert len(RSNA_KEYPOINTS) == 20 and sorted(RSNA_KEYPOINTS.values()) == list(range(17, 37))


def test_a_heatmap_decodes_to_its_point_to_a_fraction_of_a_pixel_and_a_flat_one_is_unsure() -> None:
    points = torch.tensor([[[100.3, 200.7], [17.0, 300.2]]])
    targets = heatmap_targets(points, 384)
    found, confidence = decode_points(torch.log(targets + 1e-12))
    assert torch.allclose(found, points, atol=0.2) and (confidence > 0.9).all()
    _, flat = decode_points(torch.zeros(1, 2, 96, 96))
    assert (flat < 0.01).all()
    unknown = heatmap_targets(torch.tensor([[[float("nan"), float("nan")], [10.0, 10.0]]]), 384)
    assert unknown[0, 0].sum() == 0 and torch.isclose(unknown[0, 1].sum(), torch.tensor(1.0))


def test_a_point_cut_off_the_film_is_taught_as_a_flat_map() -> None:
    """Absent points (cut off, outside the view) get a flat target, and a flat prediction decodes as unsure."""
    rng = np.random.default_rng(3)
    image = np.tile(np.linspace(20, 120, 200), (300, 1)).astype(np.uint8)
    points = np.tile(np.array([[100.0, 150.0]], np.float32), (N_LANDMARKS, 1))
    points[:8] = (100.0, 5.0)  # near the top edge: a cut from above often takes them
    points[8] = np.nan
    absent = []
    for _ in range(40):
        _, moved = training_view(image, points, 128, ViewAugment(cut=1.0), rng)
        absent.append((moved == ABSENT).all(axis=1))
        assert np.isnan(moved[8]).all()  # unknown stays unknown
    assert 0 < np.mean(absent) < 1 and np.mean(np.array(absent)[:, :8]) > np.mean(np.array(absent)[:, 9:])
    flat = heatmap_targets(torch.tensor([[[ABSENT, ABSENT]]]), 128)
    assert torch.allclose(flat, torch.full_like(flat, 1 / 32**2))
    _, confidence = decode_points(torch.log(flat))
    assert confidence.item() < 0.1


def test_the_loss_is_least_at_the_target_and_ignores_unknown_points() -> None:
    targets = heatmap_targets(torch.tensor([[[50.0, 60.0], [float("nan"), float("nan")]]]), 128)
    right = torch.log(targets + 1e-6)
    wrong = torch.roll(right, shifts=5, dims=-1)
    assert heatmap_loss(right, targets) < heatmap_loss(wrong, targets)
    noise = torch.randn_like(right)
    assert torch.isclose(heatmap_loss(right + noise * torch.tensor([0.0, 1.0])[None, :, None, None], targets), heatmap_loss(right, targets))


def test_the_network_starts_from_imagenet_and_maps_a_view_to_heatmaps_at_stride_4() -> None:
    random_start, imagenet = LandmarkNet(LandmarkNetConfig(input_size=128)), LandmarkNet(LandmarkNetConfig(input_size=128), imagenet=True)
    stem = "encoder.conv_stem.weight"
    assert not torch.allclose(random_start.state_dict()[stem], imagenet.state_dict()[stem])
    assert abs(float(imagenet.state_dict()["encoder.bn1.running_var"].mean()) - 1.0) > 0.01  # statistics came with the weights
    out = imagenet.eval()(torch.zeros(2, 1, 128, 128))
    assert out.shape == (2, N_LANDMARKS, 32, 32)


def test_a_foreign_annotation_scheme_has_channels_of_its_own_and_its_films_teach_only_those() -> None:
    config = LandmarkNetConfig(input_size=64, foreign_schemes=["rsna"])  # a card's JSON list
    assert config.foreign_schemes == ("rsna",) and config.channels == N_LANDMARKS + 20
    where, marked = config.scheme_channels("rsna")
    assert (where.start, where.stop) == (N_LANDMARKS, N_LANDMARKS + 20) and marked == tuple(RSNA_KEYPOINTS.values())
    points = np.arange(N_LANDMARKS * 2, dtype=np.float32).reshape(N_LANDMARKS, 2)
    rsna, atlas = config.scheme_targets(points, "rsna"), config.scheme_targets(points, "atlas")
    assert np.isnan(rsna[:N_LANDMARKS]).all() and np.array_equal(rsna[N_LANDMARKS:], points[list(marked)])
    assert np.array_equal(atlas[:N_LANDMARKS], points) and np.isnan(atlas[N_LANDMARKS:]).all()
    assert LandmarkNet(config).eval()(torch.zeros(1, 1, 64, 64)).shape == (1, N_LANDMARKS + 20, 16, 16)
    with pytest.raises(ValueError, match="no channels for the 'rsna' scheme"):
        LandmarkNetConfig().scheme_channels("rsna")
    with pytest.raises(ValueError, match="unknown annotation scheme"):
        LandmarkNetConfig(foreign_schemes=("coco",))


def test_a_run_started_from_a_trained_model_starts_a_new_scheme_from_the_atlas_points_it_marks(tmp_path: Path) -> None:
    """The new scheme's channels start as the atlas's answer for the same points; the atlas's are kept."""
    from matcher.landmark_files import load_landmark_model, save_landmark_model
    from matcher.landmarks import find_landmarks
    from training.landmark_start import started_network
    from training.train import TrainConfigError

    torch.manual_seed(0)
    save_landmark_model(LandmarkNet(LandmarkNetConfig(input_size=64)), tmp_path / "trained", {})
    trained, _ = load_landmark_model(tmp_path / "trained")
    config = LandmarkNetConfig(input_size=64, foreign_schemes=("rsna",))
    network = started_network(config, imagenet=False, start_from=tmp_path / "trained").eval()
    view = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        before, after = trained(view), network(view)
    marked = list(RSNA_KEYPOINTS.values())
    assert torch.allclose(after[:, :N_LANDMARKS], before) and torch.allclose(after[:, N_LANDMARKS:], before[:, marked])
    film = (np.random.default_rng(1).random((90, 70)) * 255).astype(np.uint8)
    (own,), (atlas,) = find_landmarks(network, [film], threshold=0, scheme="rsna"), find_landmarks(network, [film], threshold=0)
    unmarked = [i for i in range(N_LANDMARKS) if i not in marked]
    assert np.isnan(own.points[unmarked]).all() and np.allclose(own.points[marked], atlas.points[marked])
    with pytest.raises(TrainConfigError, match="decoder channels"):
        started_network(LandmarkNetConfig(input_size=64, decoder_channels=32), imagenet=False, start_from=tmp_path / "trained")


def test_a_view_moves_the_points_with_the_pixels() -> None:
    """A bright dot at each point of a film lands where the view says the point is, under every augmentation."""
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(20, 120, 200), (300, 1)).astype(np.uint8)  # a background with a range of grey
    points = np.full((N_LANDMARKS, 2), np.nan, np.float32)
    points[20], points[28] = (150.0, 60.0), (40.0, 250.0)
    for x, y in points[[20, 28]]:
        cv2.circle(image, (int(x), int(y)), 3, 255, -1)
    for augment in (None, ViewAugment(), ViewAugment(mirror=1.0)):
        view, moved = training_view(image, points, 128, augment, np.random.default_rng(rng.integers(1 << 30)))
        assert view.shape == (128, 128) and np.isnan(moved[0]).all()
        for index in (20, 28):
            if np.isfinite(moved[index]).all() and (moved[index] != ABSENT).all():
                x, y = np.round(moved[index]).astype(int)
                patch = view[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
                assert patch.max() > view[64, 64] + 0.5, (augment, index)  # the view's centre shows the film's background


def test_a_view_can_look_like_an_enlarged_small_copy_with_its_points_unmoved() -> None:
    """The atlas's films are also shown as the RSNA keypoint films are held (100 px, enlarged)."""
    image = (np.random.default_rng(0).random((400, 300)) * 255).astype(np.uint8)
    points = np.array([[150.0, 200.0], [40.0, 60.0]], np.float32)
    sharp, soft = (ViewAugment(noise=0.0, blur=0.0, cut=0.0, low_resolution=chance) for chance in (0.0, 1.0))
    view, moved = training_view(image, points, 256, sharp, np.random.default_rng(4))
    small, moved_small = training_view(image, points, 256, soft, np.random.default_rng(4))
    assert np.array_equal(moved, moved_small)
    assert cv2.Laplacian(small, cv2.CV_32F).var() < 0.2 * cv2.Laplacian(view, cv2.CV_32F).var()


def test_the_letterbox_keeps_the_aspect_ratio_and_inverts() -> None:
    matrix = letterbox_matrix((1000, 500), 256)
    corners = np.array([[0, 0], [499, 999]]) * np.diag(matrix[:, :2]) + matrix[:, 2]
    assert np.allclose(corners[:, 1], [0, 255.744]) and corners[0, 0] == pytest.approx(64.0)
    view, again = film_view(np.zeros((1000, 500), np.uint16), 256)
    assert view.shape == (256, 256) and view.dtype == np.float32 and np.allclose(again, matrix)


def test_phantom_joints_lie_between_the_bones_they_separate() -> None:
    rows = []
    for ray in range(1, 6):
        names = ("MC", "PP", "DP") if ray == 1 else ("MC", "PP", "MP", "DP")
        for k, row in enumerate(names):
            y0 = 400 - 60 * k
            rows.append({"bone": f"{row}{ray}", "x0": 50.0 * ray, "y0": y0, "x1": 50.0 * ray, "y1": y0 - 56})
    points = phantom_points(pd.DataFrame(rows))
    assert np.allclose(points[RAYS[3][0]], (150, 400)) and np.allclose(points[RAYS[3][1]], (150, 342))  # MC3 base, MCP halfway
    assert np.allclose(points[RAYS[1][-1]], (50, 224)) and np.isnan(points[:13]).all()
    missing_ray = phantom_points(pd.DataFrame([r for r in rows if not r["bone"].endswith("5")]))
    assert np.isnan(missing_ray[list(RAYS[5])]).all() and np.isfinite(missing_ray[list(RAYS[4])]).all()


def _atlas_from_phantoms(cohort: Path, folder: Path) -> Path:
    """An atlas-format folder (labels.csv with x0..y36, images/<id>.jpg) made of phantoms: the
    trainer's input without ../shared."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for number, film in enumerate(phantom_films(cohort), start=1):
        cv2.imwrite(str(folder / "images" / f"{number}.jpg"), film.image)
        row = {"id": str(number), "width": film.image.shape[1], "height": film.image.shape[0]}
        row |= {f"{axis}{i}": film.points[i, a] for i in range(N_LANDMARKS) for a, axis in enumerate("xy")}
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder


def test_the_landmark_trainer_runs_from_yaml_resumes_and_holds_atlas_films_out(bone2gene, render_cohort, tmp_path: Path) -> None:
    from matcher.landmark_files import load_landmark_model
    from matcher.landmarks import find_landmarks

    cohort, _ = render_cohort(n=12, seed=5, size=256)
    atlas = _atlas_from_phantoms(cohort, tmp_path / "atlas")
    settings = {"trainer": "landmarks", "out": "run", "dha": str(atlas), "phantoms": str(cohort), "phantom_films": 4}
    settings |= {"input_size": 64, "epochs": 1, "batch_size": 4, "dha_repeats": 1, "workers": 0, "imagenet": False}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(settings))
    first = bone2gene("train", tmp_path / "run.yaml")
    assert first.returncode == 0, first.stderr
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({**settings, "epochs": 2}))
    again = bone2gene("train", tmp_path / "run.yaml", "--resume")
    assert again.returncode == 0 and "resumed after epoch 1" in again.stdout, again.stderr
    assert list(pd.read_csv(tmp_path / "run" / "log.csv")["epoch"]) == [1, 2]
    network, card = load_landmark_model(tmp_path / "run" / "model")
    assert card.provenance["held_out_atlas_ids"] == ["1", "5", "9"] and card.provenance["training_films"]["atlas"] == 9
    found = find_landmarks(network, [cv2.imread(str(atlas / "images" / "1.jpg"), cv2.IMREAD_GRAYSCALE)])[0]
    assert found.points.shape == (N_LANDMARKS, 2) and ((found.confidence >= 0) & (found.confidence <= 1)).all()

    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**settings, "input_size": 100}))
    bad = bone2gene("train", tmp_path / "bad.yaml")
    assert bad.returncode == 2 and "multiple of 32" in bad.stderr


def test_the_landmarks_suite_reports_on_held_out_atlas_films_only(bone2gene, render_cohort, shared_dir: Path, tmp_path: Path) -> None:
    """A small model trained briefly on the atlas: the suite reads the films its provenance holds
    out and the full-resolution RSNA films, scores their profiles, and checks phantoms against their specs."""
    import json

    settings = {"trainer": "landmarks", "out": "run", "dha": str(shared_dir / "dha"), "input_size": 64, "epochs": 1}
    settings |= {"batch_size": 8, "dha_repeats": 1, "workers": 0, "imagenet": False}
    settings |= {"rsna": str(shared_dir / "rsna_100px"), "rsna_films": 16, "foreign_schemes": ["rsna"]}
    settings |= {"reported": str(shared_dir / "real_hands_labelled")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(settings))
    trained = bone2gene("train", tmp_path / "run.yaml")
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "landmarks.md"
    phantoms, _ = render_cohort(n=24, seed=6, size=256, disorders=("unaffected", "brachydactyly_e"))
    result = bone2gene("evaluate", "--suite", "landmarks", "--model", tmp_path / "run" / "model", "--real-films", shared_dir,
                       "--manifest", phantoms / "manifest.csv", "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["atlas_held_out"]["films"] == 24 and data["atlas_held_out"]["points"] == 24 * 37
    assert data["real_hands_labelled"]["films"] == 14 and data["real_hands_labelled"]["points"] == 14 * 20
    assert data["real_hands_labelled_own_scheme"]["films"] == 14 and data["real_hands_labelled_own_scheme"]["points"] == 14 * 20
    assert "RSNA-scheme channels" in out.read_text()
    assert len(data["per_landmark"]) <= 37 and set(data["per_bone_median_pct"]) == set(BONE_NAMES)
    assert "Command: `bone2gene evaluate --suite landmarks" in out.read_text() and "## Phantoms against their own specs" in out.read_text()
    assert data["profile_check"]["annotated"]["scored"] > 0 and data["phantom_profiles"]["phantoms"] == 24
    (row,) = data["phantom_profiles"]["disorders"]
    assert row["disorder"] == "brachydactyly_e" and "MC4" in row["bones shortened by the spec"]
    assert row["true lengths' z lower (%)"] >= 50  # the phantoms' own lengths carry their spec

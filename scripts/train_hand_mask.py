"""Train the hand-mask network on the synthetic cohort's masks; write the shipped weights.

    python scripts/train_hand_mask.py --real ../shared/real_hands [--n 2400] [--epochs 10] [--out build/hand_mask/hand_mask.safetensors]
    bone2gene model install --mask build/hand_mask/hand_mask.safetensors

The synthetic masks are exact, but synthetic images are cleaner than real films, so the
augmentations target what real radiographs add: exposure and gamma, background
gradients and shadows (a second exposure field, the detector's edge), burnt-in labels
and rulers, noise, blur and JPEG compression, right hands (flips), rotations and partial
views. The log reports synthetic validation IoU and, where ../shared/real_hands exists,
agreement with the classical mask on real radiographs (a sanity check, not ground truth).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from matcher.mask import classical_hand_mask
from matcher.mask_net import INPUT_SIZE, HandMaskNet, network_input
from training.synth.cohort import CohortConfig, generate_cohort


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image in [0, 1] float32 and a 0/1 mask, both HxW: a plausible real-film variant."""
    h, w = image.shape
    if rng.random() < 0.5:  # right hands are imaged too
        image, mask = image[:, ::-1], mask[:, ::-1]
    angle = rng.normal(0, 12) if rng.random() < 0.9 else float(rng.choice([90, 180, 270]))
    scale = rng.uniform(0.8, 1.25)
    matrix = cv2.getRotationMatrix2D((w / 2 + rng.normal(0, 0.05 * w), h / 2 + rng.normal(0, 0.05 * h)), angle, scale)
    fill = float(np.median(image[mask == 0])) if (mask == 0).any() else 0.0
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    mask = cv2.warpAffine(np.ascontiguousarray(mask), matrix, (w, h), flags=cv2.INTER_NEAREST)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:  # exposure gradient across the detector
        direction = rng.uniform(0, 2 * math.pi)
        ramp = (np.cos(direction) * xx / w + np.sin(direction) * yy / h) * rng.uniform(0.05, 0.35)
        image = image + ramp.astype(np.float32)
    if rng.random() < 0.35:  # a soft-edged brighter field or shadow in the background
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        box = (xx > x0) & (xx < x0 + rng.uniform(0.2, 0.7) * w) & (yy > y0) & (yy < y0 + rng.uniform(0.2, 0.7) * h)
        soft = cv2.GaussianBlur(box.astype(np.float32), (0, 0), rng.uniform(1, 8))
        image = image + soft * rng.uniform(-0.15, 0.25) * (mask == 0)
    if rng.random() < 0.35:  # rulers and labels: bright bars or boxes off the hand
        for _ in range(int(rng.integers(1, 3))):
            bw, bh = int(rng.uniform(0.03, 0.12) * w), int(rng.uniform(0.03, 0.25) * h)
            x0, y0 = int(rng.uniform(0, w - bw)), int(rng.uniform(0, h - bh))
            if not mask[y0 : y0 + bh, x0 : x0 + bw].any():
                image[y0 : y0 + bh, x0 : x0 + bw] = rng.uniform(0.85, 1.0)
    image = np.clip(image, 0, 1) ** rng.uniform(0.6, 1.7)
    image = image * rng.uniform(0.7, 1.2) + rng.uniform(-0.1, 0.15)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), rng.uniform(0.3, 1.5))
    image = image + rng.normal(0, rng.uniform(0, 0.04), image.shape)
    image = np.clip(image, 0, 1).astype(np.float32)
    if rng.random() < 0.3:
        _ok, buf = cv2.imencode(".jpg", (image * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return image, mask


class SyntheticMasks(Dataset):
    def __init__(self, root: Path, manifest: pd.DataFrame, train: bool, seed: int) -> None:
        self.items = [(root / r["image"], root / r["mask"]) for _, r in manifest.iterrows()]
        self.train = train
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.items[index]
        image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        mask = (cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0).astype(np.uint8)
        if self.train:
            image, mask = augment(image, mask, np.random.default_rng([self.seed, self.epoch, index]))
        x = network_input(image)
        y = cv2.resize(mask.astype(np.float32), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)[None]
        return torch.from_numpy(x), torch.from_numpy((y > 0.5).astype(np.float32))


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    return (1 - (2 * inter + 1) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)).mean()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def real_agreement(model: HandMaskNet, real_dir: Path) -> float | None:
    paths = sorted(real_dir.glob("*.png"))
    if not paths:
        return None
    scores = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        with torch.no_grad():
            prob = torch.sigmoid(model(torch.from_numpy(network_input(image))[None]))[0, 0].numpy()
        predicted = cv2.resize(prob, image.shape[::-1]) > 0.25
        scores.append(iou(predicted, classical_hand_mask(image) > 0))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--n", type=int, default=2400, help="synthetic images (10%% held out)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--cohort", type=Path, help="reuse a synthetic cohort directory")
    parser.add_argument("--max-train", type=int, default=0, help="train on at most this many images (0 = all)")
    parser.add_argument("--out", type=Path, default=repo / "build" / "hand_mask" / "hand_mask.safetensors")
    parser.add_argument(
        "--real", type=Path, required=True, help="a folder of real hand films, for the refusal check (e.g. ../shared/real_hands)"
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    root = args.cohort or Path(tempfile.mkdtemp(prefix="maskcohort_"))
    if not (root / "manifest.csv").exists():
        print(f"generating {args.n} synthetic radiographs in {root} ...", flush=True)
        generate_cohort(CohortConfig(n=args.n, out=root, seed=args.seed, size=320))
    manifest = pd.read_csv(root / "manifest.csv", keep_default_na=False)
    held_out = manifest["patient_id"].isin(manifest["patient_id"].drop_duplicates().sample(frac=0.1, random_state=args.seed))
    train_rows = manifest[~held_out]
    if args.max_train:
        train_rows = train_rows.sample(n=min(args.max_train, len(train_rows)), random_state=args.seed)
    train_set = SyntheticMasks(root, train_rows, train=True, seed=args.seed)
    val_set = SyntheticMasks(root, manifest[held_out], train=False, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch, shuffle=True, num_workers=1, persistent_workers=False)
    val_loader = DataLoader(val_set, batch_size=32)

    model = HandMaskNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    bce = nn.BCEWithLogitsLoss()
    history = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        train_set.epoch = epoch
        model.train()
        losses = []
        for x, y in train_loader:
            logits = model(x)
            loss = bce(logits, y) + dice_loss(logits, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        model.eval()
        scores = []
        with torch.no_grad():
            for x, y in val_loader:
                prob = torch.sigmoid(model(x)).numpy()
                scores += [iou(p[0] > 0.25, t[0] > 0.5) for p, t in zip(prob, y.numpy(), strict=True)]
        agreement = real_agreement(model, args.real) if args.real.is_dir() else None
        record = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "val_iou": float(np.mean(scores)),
            "real_agreement_with_classical_iou": agreement,
            "seconds": round(time.perf_counter() - start, 1),
        }
        history.append(record)
        print(json.dumps(record), flush=True)
        metadata = {
            "format": "bone2gene hand mask v1",
            "widths": json.dumps(list(model.widths)),
            "input_size": str(INPUT_SIZE),
            "threshold": "0.25",
            "training": json.dumps({"synthetic_images": len(manifest), "epochs_done": epoch + 1, "seed": args.seed, "history": history}),
        }
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        tmp = args.out.with_suffix(".tmp")
        save_file(state, str(tmp), metadata=metadata)
        tmp.replace(args.out)  # a checkpoint per epoch; the last one is the shipped model
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

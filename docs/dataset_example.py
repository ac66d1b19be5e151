import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from student_train.dataset import CacheDataset

# mirror=True flips half the frames *with* the mirrored clip's features and label: no RandomHorizontalFlip.
augment = v2.Compose([v2.RandomResizedCrop(32, scale=(0.5, 1.0)), v2.ToDtype(torch.float32, scale=True)])
data = CacheDataset("data/features.h5", "train", mirror=True, transform=augment)
loader = DataLoader(data, batch_size=32, shuffle=True, num_workers=2, drop_last=True)

backbone = nn.Sequential(nn.Conv2d(3, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
classify = nn.Sequential(nn.Flatten(), nn.Linear(64, len(data.classes)))
hallucinate = nn.Sequential(nn.Flatten(), nn.Linear(64, data.feature_dim), nn.ReLU())
optimizer = torch.optim.Adam([*backbone.parameters(), *classify.parameters(), *hallucinate.parameters()], lr=1e-3)
for epoch in range(2):
    data.set_epoch(epoch)  # new mirror flips each epoch
    for batch in loader:
        h = backbone(batch["image"])
        hallucination = nn.functional.mse_loss(hallucinate(h).sigmoid(), batch["features"].sigmoid())
        loss = nn.functional.cross_entropy(classify(h), batch["label"]) + 50 * hallucination  # the paper's recipe
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.4f}")

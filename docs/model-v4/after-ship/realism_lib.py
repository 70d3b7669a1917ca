"""The realism score of realism_exp.py: minus the grey-EfficientNet distance to the 3 nearest
training faces, plus log sharpness in the face, each z-scored by 1,000 of the model's samples."""
import numpy as np, cv2
d = np.load("runs/real/feats.npz"); REF = d["train_g"].astype(np.float32)
gen_imgs = np.load("runs/real/gen_imgs.npy")
def sharp(faces):
    return np.array([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)[80:220, 60:196].var() for f in faces])
def nn3(e):
    e = np.asarray(e, np.float32)
    D = (e ** 2).sum(1)[:, None] - 2 * e @ REF.T + (REF ** 2).sum(1)[None]
    return np.sort(D, 1)[:, :3].mean(1)
NN, SH = nn3(d["gen_g"][:1000]), np.log(sharp(gen_imgs[:1000]))
STATS = (NN.mean(), NN.std(), SH.mean(), SH.std())
def realism(faces, e):
    return -(nn3(e) - STATS[0]) / STATS[1] + (np.log(sharp(faces)) - STATS[2]) / STATS[3]

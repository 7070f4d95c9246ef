"""vaelab inside scikit-learn: a walkthrough on sklearn's 8x8 digits (docs/api.md explains each step).

Run it as a script (about 20 s on a 2-core CPU), or cell by cell (`# %%`) in an editor that knows cells.

    python examples/sklearn_pipeline.py
"""

# %% The data: 1,797 digits of 8x8 pixels, as floats 0..16
import tempfile
import time

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline

from vaelab.sklearn import PCA, VAE, BetaVAE, ConditionalVAE

start = time.perf_counter()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
print(f"digits: {X_train.shape[0]} train, {X_test.shape[0]} test images of {X.shape[1]} pixels, values 0..16")

# %% A VAE is a transformer: fit, transform (latent means), inverse_transform (decode), sample, score (ELBO)
# vaelab reads floats as pixels in [0, 1]; value_range=(0, 16) maps these digits there (and back on output).
vae = VAE(latent_dim=8, hidden=(128,), epochs=20, value_range=(0, 16), random_state=0)
codes = vae.fit(X_train).transform(X_test)  # (n, 8) posterior means
recon = vae.inverse_transform(codes)  # (n, 64), back in 0..16
print(f"VAE codes {codes.shape}, images shaped {vae.image_shape_} (inferred: 64 = 8 x 8)")
print(f"test ELBO {vae.score(X_test):.2f} nats per image; mean absolute error {np.abs(recon - X_test).mean():.2f}")
print(f"samples from the prior: {vae.sample(16).shape}; loss per epoch in vae.history_ ({len(vae.history_)} rows)")

# %% In a Pipeline: VAE codes -> logistic regression, against PCA with as many dimensions
for name, reducer in [("VAE", VAE), ("PCA", PCA)]:
    params = dict(hidden=(128,), epochs=20) if reducer is VAE else {}
    pipe = make_pipeline(reducer(latent_dim=8, value_range=(0, 16), random_state=0, **params),
                         LogisticRegression(max_iter=2000))  # fmt: skip
    accuracy = pipe.fit(X_train, y_train).score(X_test, y_test)
    print(f"{name} (8 dims) -> LogisticRegression: test accuracy {accuracy:.3f}")

# %% GridSearchCV over latent_dim and beta (a beta-VAE trains on recon + beta * KL)
pipe = make_pipeline(BetaVAE(hidden=(128,), epochs=15, value_range=(0, 16), random_state=0),
                     LogisticRegression(max_iter=2000))  # fmt: skip
grid = GridSearchCV(pipe, {"betavae__latent_dim": [2, 16], "betavae__beta": [1.0, 4.0]}, cv=3)
grid.fit(X_train, y_train)
print(f"grid search: best {grid.best_params_}, cv accuracy {grid.best_score_:.3f}, "
      f"test accuracy {grid.score(X_test, y_test):.3f}")  # fmt: skip

# %% A conditional VAE: fit(X, y); draw digits of a chosen class; the model can also guess labels
cvae = ConditionalVAE(latent_dim=4, hidden=(128,), epochs=30, value_range=(0, 16), random_state=0)
cvae.fit(X_train, y_train)
threes = cvae.sample(8, y=3)  # eight 3s
guessed = cvae.infer_labels(X_test)  # what transform(X) uses when no labels are given (as in a Pipeline)
print(f"CVAE: sampled {threes.shape[0]} threes; as a generative classifier: accuracy {(guessed == y_test).mean():.3f}")

# %% Persistence: pickle / joblib hold the weights as safetensors bytes; the copy transforms identically
with tempfile.TemporaryDirectory() as folder:
    joblib.dump(vae, f"{folder}/vae.joblib")
    again = joblib.load(f"{folder}/vae.joblib")  # only load files you made: unpickling runs code
    assert np.array_equal(again.transform(X_test), vae.transform(X_test))
    print("joblib round trip: same codes")

    # %% Export the decoder to ONNX and run it without torch (needs `pip install 'vaelab[export]'`)
    try:
        import onnxruntime

        from vaelab.export import export_model, read_metadata

        (path,) = export_model(vae.model_, folder, "onnx", "decoder")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (images,) = session.run(None, {"z": codes.astype(np.float32)})  # (n, 1, 8, 8) in [0, 1]
        difference = np.abs(images.reshape(len(codes), -1) * 16 - recon).max()
        print(f"ONNX decoder {read_metadata(path)['inputs']} -> images: max difference from vaelab {difference:.1e}")
    except ImportError:
        print("skipped the ONNX export: pip install 'vaelab[export]'")

print(f"done in {time.perf_counter() - start:.0f} s")

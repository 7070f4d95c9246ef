"""The explorer's API (`vaelab serve`): each endpoint gives what the run's own functions give, and every bad input
gets a 4xx with a message that says what is wrong."""

import base64
import io
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from vaelab.viz import interpolation_grid
from vaelab.viz.traverse import split_float
from vaelab.web import create_app, load_explorers
from vaelab.web.app import STATIC
from vaelab.web.server import allowed_hosts
from vaelab.web.uploads import read_upload, reduced

ORDER = ("vae2", "vae4", "cvae", "joint")
VAE2, VAE4, CVAE, JOINT = range(4)


@pytest.fixture(scope="module")
def explorers(explorer_runs):
    return load_explorers([explorer_runs[name] for name in ORDER])


@pytest.fixture(scope="module")
def client(explorers):
    return TestClient(create_app(explorers), base_url="http://127.0.0.1")


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def png_upload(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def digit_on_black(size: int = 64) -> np.ndarray:
    """A white ring on black, as a user's PNG of a '0'."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    radius = np.hypot(yy, xx)
    return np.where((radius > size / 5) & (radius < size / 3), 255, 0).astype(np.uint8)


def test_runs_list_the_latent_spec_and_the_dimensions_by_kl(client):
    runs = client.get("/api/runs").json()
    assert [r["name"] for r in runs] == list(ORDER)
    assert [r["latent_dim"] for r in runs] == [2, 4, 3, 3]
    assert runs[JOINT]["discrete"] == [4] and runs[VAE2]["discrete"] == []
    assert runs[CVAE]["num_classes"] == 10 and runs[VAE2]["num_classes"] == 0
    for r in runs:
        assert sorted(r["order"]) == list(range(r["latent_dim"]))
        kl = [r["kl"][j] for j in r["order"]]
        assert kl == sorted(kl, reverse=True)
        assert len(r["active"]) == len(r["prior_std"]) == r["latent_dim"]
        assert r["image_shape"] == [1, 8, 8] and r["n_test"] > 100


def test_decode_gives_the_runs_decoded_image_as_png(client, explorers):
    z = [0.5, -1.0]
    response = client.post(f"/api/runs/{VAE2}/decode", json={"z": z})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    expected = (explorers[VAE2].run.decode(torch.tensor([z]))[0, 0] * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(png_array(response.content), expected)


def test_decode_follows_the_label_of_a_conditional_model(client):
    images = [client.post(f"/api/runs/{CVAE}/decode", json={"z": [0, 0, 0], "label": c}).content for c in (1, 7)]
    assert not np.array_equal(png_array(images[0]), png_array(images[1]))


def test_decode_follows_the_category_of_a_joint_vae(client):
    images = [client.post(f"/api/runs/{JOINT}/decode", json={"z": [0, 0, 0], "codes": [c]}).content for c in (0, 3)]
    assert not np.array_equal(png_array(images[0]), png_array(images[1]))


@pytest.mark.parametrize(
    ("run", "body", "message"),
    [
        (VAE2, {"z": [0.0]}, "z must hold 2 numbers"),
        (VAE2, {"z": [0, 0, 0]}, "z must hold 2 numbers"),
        (VAE2, {"z": ["0", 0]}, "valid number"),
        (VAE2, {"z": [True, 0]}, "valid number"),
        (VAE2, {"z": [1e5, 0]}, "less than or equal to 10000"),
        (VAE2, {"z": 3}, "valid list"),
        (VAE2, {}, "Field required"),
        (VAE2, {"z": [0, 0], "extra": 1}, "Extra inputs"),
        (VAE2, {"z": [0, 0], "label": 1}, "not a conditional model"),
        (CVAE, {"z": [0, 0, 0]}, "label must be 0..9"),
        (CVAE, {"z": [0, 0, 0], "label": 10}, "label must be 0..9"),
        (CVAE, {"z": [0, 0, 0], "label": -1}, "greater than or equal to 0"),
        (JOINT, {"z": [0, 0, 0]}, "codes must hold 1 categories"),
        (JOINT, {"z": [0, 0, 0], "codes": [4]}, "categories 0..3"),
    ],
)
def test_decode_refuses_bad_input_with_a_clear_422(client, run, body, message):
    response = client.post(f"/api/runs/{run}/decode", json=body)
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_decode_refuses_non_finite_numbers(client, literal):
    response = client.post(f"/api/runs/{VAE2}/decode", content=b'{"z": [0, %s]}' % literal,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422 and "finite number" in response.text


def test_malformed_json_is_a_400(client):
    for body in (b"{", b"[" * 100_000, b"\xff\xfe"):
        response = client.post(f"/api/runs/{VAE2}/decode", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body[:10]
    response = client.post(f"/api/runs/{VAE2}/decode", content=b"", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "missing"  # no body at all
    response = client.post(
        f"/api/runs/{VAE2}/decode", content=b'{"z": [0, 0}', headers={"content-type": "application/json"}
    )
    assert response.json()["detail"].startswith("the body is not valid JSON at character 11")


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
@pytest.mark.parametrize("endpoint", ["decode", "encode", "interpolate"])
def test_a_json_endpoint_refuses_other_content_types_with_415(client, endpoint, kind):
    response = client.post(f"/api/runs/{VAE2}/{endpoint}", content=b'{"z": [0, 0]}', headers={"content-type": kind})
    assert response.status_code == 415 and "Content-Type: application/json" in response.json()["detail"]


def test_json_without_a_content_type_is_refused_with_415(client):
    response = client.post(f"/api/runs/{VAE2}/decode", content=b'{"z": [0, 0]}')
    assert response.status_code == 415 and "got no Content-Type" in response.json()["detail"]


@pytest.mark.parametrize("host", ["rebind.attacker.example:8765", "rebind.attacker.example", "192.168.1.5:8765", ""])
def test_requests_for_another_host_name_are_refused(client, host):
    """DNS rebinding: a page on attacker.example whose name now points at 127.0.0.1 sends its own Host header."""
    for method, path in [("GET", "/api/runs"), ("GET", f"/api/runs/{VAE2}/test-images/0"), ("GET", "/static")]:
        response = client.request(method, path, headers={"host": host}, follow_redirects=False)
        assert response.status_code == 400 and "answers requests for 127.0.0.1, [::1], localhost only" in response.text


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "127.0.0.1", "localhost."]
)
def test_requests_for_this_machine_by_a_local_name_are_answered(client, host):
    assert client.get("/api/runs", headers={"host": host}).status_code == 200


def test_the_allowed_host_names_follow_the_listening_address(explorers):
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("192.168.1.5") is None  # shared on purpose: any name
    assert allowed_hosts("127.0.0.2") == {"127.0.0.1", "localhost", "[::1]", "127.0.0.2"}
    assert "[::1]" in allowed_hosts("::1")
    assert "notebook.example.org" in allowed_hosts("127.0.0.1", ["Notebook.example.org:443"])  # serve --allow-host
    public = TestClient(create_app(explorers, hosts=None), base_url="http://192.168.1.5")
    assert public.get("/api/runs", headers={"host": "my-machine.lan:8765"}).status_code == 200


def test_unknown_run_is_404(client):
    response = client.post("/api/runs/9/decode", json={"z": [0, 0]})
    assert response.status_code == 404 and "no run 9" in response.json()["detail"]
    assert client.get("/api/runs/-1/map").status_code == 422


def test_a_2d_map_holds_the_latent_means_of_the_test_images(client, explorers):
    run = explorers[VAE2].run
    latent_map = client.get(f"/api/runs/{VAE2}/map").json()
    x, _ = split_float(run, "test")
    assert latent_map["method"] == "latents" and latent_map["axes"] == ["z0", "z1"]
    np.testing.assert_allclose(latent_map["points"], run.encode(x).numpy(), atol=1e-4)
    assert len(latent_map["labels"]) == len(x) and len(latent_map["colours"]) == max(latent_map["labels"]) + 1


def test_a_higher_dimensional_map_is_a_pca_plane_that_maps_back_to_latents(client):
    latent_map = client.get(f"/api/runs/{VAE4}/map").json()
    assert latent_map["method"] == "pca"
    origin, basis = np.array(latent_map["origin"]), np.array(latent_map["basis"])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-6)
    point = np.array(latent_map["points"][5])
    z = origin + point @ basis  # what a click on that point decodes
    np.testing.assert_allclose((z - origin) @ basis.T, point, atol=1e-9)


def test_encoding_a_test_image_gives_its_latents_label_and_map_point(client, explorers):
    encoded = client.post(f"/api/runs/{CVAE}/encode", json={"index": 7}).json()
    run = explorers[CVAE].run
    x, y = split_float(run, "test", 8)
    np.testing.assert_allclose(encoded["z"], run.encode(x[7:8], y[7:8])[0].numpy(), atol=1e-6)
    assert encoded["label"] == int(y[7]) and encoded["codes"] == []
    latent_map = client.get(f"/api/runs/{CVAE}/map").json()
    np.testing.assert_allclose(encoded["point"], latent_map["points"][7], atol=1e-3)
    assert encoded["image"].startswith("data:image/png;base64,")
    assert encoded["reconstruction"].startswith("data:image/png;base64,")


def test_encoding_gives_joint_vae_categories(client):
    encoded = client.post(f"/api/runs/{JOINT}/encode", json={"index": 0}).json()
    assert len(encoded["z"]) == 3 and len(encoded["codes"]) == 1 and 0 <= encoded["codes"][0] < 4


@pytest.mark.parametrize("body", [{"index": 10**6}, {"index": -1}, {"index": 1.5}, {"index": "3"}, {}])
def test_encoding_refuses_bad_indices(client, body):
    assert client.post(f"/api/runs/{VAE2}/encode", json=body).status_code == 422


def test_interpolation_is_the_viz_functions_strip(client, explorers):
    response = client.post(f"/api/runs/{VAE2}/interpolate", json={"i": 1, "j": 4, "steps": 5, "slerp": True})
    expected = interpolation_grid(explorers[VAE2].run, 1, 4, 5, True)[..., 0]
    np.testing.assert_array_equal(png_array(response.content), expected)


@pytest.mark.parametrize("body", [{"i": 0, "j": 1, "steps": 1}, {"i": 0, "j": 1, "steps": 33}, {"i": 0, "j": 99999}])
def test_interpolation_refuses_bad_input(client, body):
    assert client.post(f"/api/runs/{VAE2}/interpolate", json=body).status_code == 422


def test_test_images_are_served_by_index(client, explorers):
    image = png_array(client.get(f"/api/runs/{VAE2}/test-images/3").content)
    np.testing.assert_array_equal(image, explorers[VAE2].run.data.split("test")[0][3, 0].numpy())
    assert client.get(f"/api/runs/{VAE2}/test-images/99999").status_code == 422
    assert client.get(f"/api/runs/{VAE2}/test-images/x").status_code == 422


def test_an_uploaded_png_is_resized_encoded_reconstructed_and_placed(client, explorers):
    response = client.post(f"/api/runs/{VAE2}/upload", content=png_upload(digit_on_black()),
                           headers={"content-type": "image/png"})  # fmt: skip
    assert response.status_code == 200
    encoded = response.json()
    assert len(encoded["z"]) == 2 and encoded["point"] == pytest.approx(encoded["z"])
    seen = png_array(base64.b64decode(encoded["image"].split(",")[1]))
    assert seen.shape == (8, 8)


def test_dark_on_white_uploads_are_inverted_to_the_training_background(client):
    def encode(array, fmt="PNG", kind="image/png"):
        response = client.post(
            f"/api/runs/{VAE2}/upload", content=png_upload(array, fmt), headers={"content-type": kind}
        )
        assert response.status_code == 200, response.text
        return response.json()["z"]

    assert encode(255 - digit_on_black()) == pytest.approx(encode(digit_on_black()), abs=1e-5)
    assert encode(digit_on_black(), "JPEG", "image/jpeg") == pytest.approx(encode(digit_on_black()), abs=0.1)


def ring_upload(mode: str, size: int) -> tuple[bytes, str]:
    """digit_on_black as a user might send it: grey PNG, white ink on a transparent RGBA or palette canvas, JPEG."""
    ring, buffer = digit_on_black(size), io.BytesIO()
    if mode == "RGBA":
        Image.fromarray(np.dstack([ring] * 4)).save(buffer, "PNG")
    elif mode == "P":
        image = Image.fromarray((ring > 0).astype(np.uint8), mode="P")
        image.putpalette([0, 0, 0, 255, 255, 255])
        image.save(buffer, "PNG", transparency=0)
    else:
        Image.fromarray(ring).save(buffer, mode)
    return buffer.getvalue(), "image/jpeg" if mode == "JPEG" else "image/png"


@pytest.mark.parametrize("mode", ["PNG", "RGBA", "P", "JPEG"])
@pytest.mark.slow
def test_a_4096_pixel_upload_is_shrunk_before_it_is_copied_and_reads_as_the_full_image_would(mode):
    """The reduction by whole blocks (and JPEG's reduced-scale decoding) that bounds an upload's memory changes
    the model input by little against PIL's Lanczos resize of the full drawing (computed here independently)."""
    x = read_upload(*ring_upload(mode, 4096), (1, 28, 28), background=0.0)[0, 0]
    full = Image.fromarray(digit_on_black(4096)).resize((28, 28), Image.Resampling.LANCZOS)
    reference = torch.from_numpy(np.asarray(full, dtype=np.float32) / 255)
    assert (x - reference).abs().mean() < 0.01 and (x - reference).abs().max() < 0.1
    assert reduced(Image.new("RGBA", (4096, 4096)), (28, 28)).size == (512, 512)  # by 8: no side under 512
    assert reduced(Image.new("RGBA", (1000, 4096)), (28, 28)).size == (1000, 4096)  # 1000 // 512 < 2: as it is


def test_uploads_to_a_conditional_model_need_a_label(client):
    data, headers = png_upload(digit_on_black()), {"content-type": "image/png"}
    assert client.post(f"/api/runs/{CVAE}/upload", content=data, headers=headers).status_code == 422
    response = client.post(f"/api/runs/{CVAE}/upload?label=0", content=data, headers=headers)
    assert response.status_code == 200 and response.json()["label"] == 0


@pytest.mark.parametrize(
    ("data", "kind", "status", "message"),
    [
        (png_upload(digit_on_black()), "image/gif", 415, "PNG or JPEG"),
        (png_upload(digit_on_black()), "", 415, "PNG or JPEG"),
        (b"", "image/png", 422, "empty"),
        (b"not an image at all", "image/png", 422, "not a PNG image"),
        (png_upload(digit_on_black())[:60], "image/png", 422, "damaged"),
        (png_upload(digit_on_black()), "image/jpeg", 422, "not a JPEG image"),
        (png_upload(np.zeros((1, 5000), np.uint8)), "image/png", 422, "at most 4096 per side"),
    ],
)
def test_bad_uploads_are_refused_with_the_reason(client, data, kind, status, message):
    response = client.post(f"/api/runs/{VAE2}/upload", content=data, headers={"content-type": kind})
    assert response.status_code == status and message in response.json()["detail"]


def test_the_page_and_its_files_are_served_and_nothing_else(client):
    page = client.get("/")
    assert page.status_code == 200 and "vaelab explorer" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("explorer.js", "explorer.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fschemas.py",
                 "/static/", "/app.py", "/docs", "/redoc"):  # fmt: skip
        assert client.get(path).status_code == 404, path


def test_the_static_files_name_no_external_url():
    for path in STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z]", path.read_text()), path.name


def test_the_openapi_schema_documents_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/runs", "/api/runs/{run_id}/map", "/api/runs/{run_id}/decode", "/api/runs/{run_id}/encode",
        "/api/runs/{run_id}/upload", "/api/runs/{run_id}/interpolate", "/api/runs/{run_id}/test-images/{index}",
    }  # fmt: skip
    assert set(schema["paths"]["/api/runs/{run_id}/upload"]["post"]["requestBody"]["content"]) == {
        "image/png", "image/jpeg"
    }  # fmt: skip


def vaelab_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vaelab", *args]


@pytest.mark.slow
def test_serve_listens_on_127_0_0_1_prints_its_address_and_stops_on_ctrl_c(explorer_runs):
    command = vaelab_command("serve", str(explorer_runs["vae2"]), str(explorer_runs["joint"]), "--port", "0")
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:  # closes its stdout at the end
        try:
            line = process.stdout.readline()
            address = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert address and "vae2, joint" in line, line
            with urllib.request.urlopen(address.group(0) + "api/runs", timeout=10) as response:
                assert [r["name"] for r in json.load(response)] == ["vae2", "joint"]
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(20)


@pytest.mark.slow
def test_serve_on_a_busy_port_is_one_clear_error(explorer_runs):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(vaelab_command("serve", str(explorer_runs["vae2"]), "--port", str(port)),
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


@pytest.mark.slow
def test_serve_of_a_missing_run_is_one_clear_error(tmp_path):
    result = subprocess.run(vaelab_command("serve", str(tmp_path / "nope")), capture_output=True, text=True, timeout=60)
    assert (
        result.returncode == 2 and result.stderr.startswith("error: run folder") and "does not exist" in result.stderr
    )

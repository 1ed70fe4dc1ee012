"""Per-dataset metadata as data: scale, native file names, image folders and where each format detail was checked.

Every reader looks its dataset up in :data:`DATASETS`; nothing about a dataset's layout is hard-coded elsewhere.
Paths are relative to the dataset folder the user passes as ``--root``; where public copies of a dataset differ,
``image_dirs`` / file entries list candidates tried in order.

Library module, no entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from piaa.schema import Scale


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    kind: str  # "piaa" (many raters, has folds) or "general" (one mean score per image, for task vectors)
    scale: Scale
    files: dict[str, tuple[str, ...]]  # role -> candidate paths (first existing wins)
    image_dirs: tuple[str, ...]  # candidate image folders, relative to root
    sources: tuple[str, ...] = ()  # where the format details were verified (repo + path)
    notes: str = ""
    extra: dict = field(default_factory=dict)


DATASETS: dict[str, DatasetInfo] = {
    "flickr-aes": DatasetInfo(
        name="flickr-aes",
        title="FLICKR-AES (Ren et al., ICCV 2017)",
        kind="piaa",
        scale=Scale(1.0, 5.0, 1.0),
        files={
            "ratings": ("FLICKR-AES_image_labeled_by_each_worker.csv",),
            "image_scores": ("FLICKR-AES_image_score.txt",),
        },
        image_dirs=("40K", "FLICKR-AES-001/40K"),
        sources=(
            "ratings separator ', ': yzc-ippl/MTCL code/PIAA/test_PIAA_model.py reads the file with sep=',' and "
            "selects columns 'worker', ' imagePair', ' score' (leading spaces); other public loaders strip the "
            "header names or split on ',' and int() the score",
            "folder layout 40K/ + both files: README of a public PIAA project listing FLICKR-AES data files",
            "test workers: yzc-ippl/MTCL code/PIAA/FlickrAES_PIAA/label/test_workers_ID.csv (copied to eval/data)",
        ),
        notes="image_score.txt is whitespace separated; some copies start names with one space",
        extra={"test_workers_file": "flickr_aes_test_workers.csv"},
    ),
    "para": DatasetInfo(
        name="para",
        title="PARA (Yang et al., CVPR 2022)",
        kind="piaa",
        scale=Scale(1.0, 5.0, 0.5),
        files={"ratings": ("annotation/PARA-Images.csv",), "users": ("annotation/PARA-UserInfo.csv",)},
        image_dirs=("imgs",),
        sources=(
            "lwchen6309/aesthetics_transfer_learning PARA_PIAA_dataloader.py (imgs/<sessionId>/<imageName>, "
            "UserInfo columns age, gender, EducationalLevel, artExperience, photographyExperience, personality-E..C)",
            "lwchen6309/aesthetics_transfer_learning hf_release/configs/demographics_options_para.json (values)",
        ),
        extra={"folds_dir": "para_user_folds"},
    ),
    "lapis": DatasetInfo(
        name="lapis",
        title="LAPIS (Maerten et al., CVPR-W 2025)",
        kind="piaa",
        scale=Scale(0.0, 100.0, None),
        files={"ratings": ("annotation/LAPIS_individualratings_metaANDdemodata.csv",)},
        image_dirs=("images", "datasetImages_originalSize"),
        sources=(
            "lwchen6309/aesthetics_transfer_learning README.md (annotation/ + images/ layout)",
            "lwchen6309/aesthetics_transfer_learning LAPIS_PIAA_dataloader.py (participant_id, response, "
            "nationality, demo_gender, demo_edu, demo_colorblind, age, VAIAK1..7, 2VAIAK1..4)",
            "lwchen6309/aesthetics_transfer_learning hf_release/configs/demographics_options_lapis.json",
        ),
        notes="`file` may carry a style sub-folder; the image is looked up as given, then by its base name",
    ),
    "aadb": DatasetInfo(
        name="aadb",
        title="AADB (Kong et al., ECCV 2016)",
        kind="piaa",
        scale=Scale(1.0, 5.0, 1.0),  # per-rater AMT answers
        files={
            "lists": ("imgListFiles_label", "imgListFiles_label/imgListFiles_label", "AADB_imgListFiles_label"),
            "raters": ("AADB_AllinAll.csv", "result_csv.csv"),
        },
        image_dirs=("datasetImages_originalSize",),
        sources=(
            "list names + 'name score' lines: isaaccorley/deep-aesthetics-pytorch torch_aesthetic/aadb.py; "
            "score in [0, 1] (thresholded at 0.5): shedy-pub/hlagcn-jittor utils_jittor/dataset.py",
            "per-rater AMT batch (Input.image_urlK / Answer.overallScoreK, image name farm_server_file): "
            "shedy-pub/hlagcn-jittor utils_jittor/dataset.py",
        ),
        notes="per-rater worker column assumed to be Amazon Mechanical Turk's standard 'WorkerId' (not verified)",
        extra={
            "mean_scale": Scale(0.0, 1.0, None),
            "lists": (
                ("train", "imgListTrainRegression_score.txt"),
                ("validation", "imgListValidationRegression_score.txt"),
                ("test", "imgListTestRegression_score.txt", "imgListTestNewRegression_score.txt"),
            ),
            "worker_column": "WorkerId",
        },
    ),
    "real-cur": DatasetInfo(
        name="real-cur",
        title="REAL-CUR (real personal albums rated by their owners)",
        kind="piaa",
        scale=Scale(1.0, 5.0, 1.0),
        files={},
        image_dirs=("images", "."),
        sources=("a public IQA/PIAA comparison script walking <album>/<score>/<image> sub-folders (code index)",),
        extra={"image_exts": (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic")},
    ),
    "ava": DatasetInfo(
        name="ava",
        title="AVA (Murray et al., CVPR 2012)",
        kind="general",
        scale=Scale(1.0, 10.0, None),
        files={"ratings": ("AVA.txt", "AVA_dataset/AVA.txt")},
        image_dirs=("images", "image", "AVA_dataset/images", "AVA_dataset/image"),
        sources=(
            "the AVA release readme (June 2012): col 1 index, col 2 image id, cols 3-12 counts of ratings 1..10, "
            "cols 13-14 semantic tags, col 15 challenge id",
            "shedy-pub/hlagcn-jittor utils_jittor/dataset.py (images/<id>.jpg, counts = tokens 2..11)",
        ),
    ),
    "koniq10k": DatasetInfo(
        name="koniq10k",
        title="KonIQ-10k (Hosu et al., TIP 2020)",
        kind="general",
        scale=Scale(1.0, 5.0, None),  # column MOS; MOS_zscore is on 0..100
        files={
            "ratings": (
                "koniq10k_scores_and_distributions.csv",
                "koniq10k_scores_and_distributions/koniq10k_scores_and_distributions.csv",
            )
        },
        image_dirs=("1024x768", "512x384", "koniq10k_1024x768/1024x768", "images"),
        sources=(
            "header image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore (MOS = column 8, MOS_zscore = column 10): "
            "several public KonIQ loaders in the code index (a KONIQ10k patch dataset indexing columns 7/9; "
            "a KonIQ training README stating MOS on 1-5 and MOS_zscore on 0-100)",
            "MOS_zscore range (1, 100): chaofengc/IQA-PyTorch pyiqa/dataset_info.py ('koniq'); we accept 0-100",
        ),
        extra={"score_columns": {"MOS": Scale(1.0, 5.0, None), "MOS_zscore": Scale(0.0, 100.0, None)}},
    ),
    "spaq": DatasetInfo(
        name="spaq",
        title="SPAQ (Fang et al., CVPR 2020)",
        kind="general",
        scale=Scale(0.0, 100.0, None),
        files={
            "ratings": (
                "Annotations/MOS and Image attribute scores.xlsx",
                "Annotations/MOS and Image attribute scores.csv",
                "Annotations/MOS_and_Image_attribute_scores.csv",
                "MOS and Image attribute scores.xlsx",
                "MOS and Image attribute scores.csv",
            )
        },
        # the release's TestImage/, and the Dataset/TestImage/ layout that common re-packagings use
        image_dirs=("TestImage", "SPAQ/TestImage", "Dataset/TestImage", "SPAQ/Dataset/TestImage"),
        sources=(
            "Annotations/MOS and Image attribute scores.xlsx with columns 'Image name', 'MOS' (+ Brightness, "
            "Colorfulness, Contrast, Noisiness, Sharpness) and images in TestImage/: several public IQA loaders "
            "(code index), one documenting a CSV export MOS_and_Image_attribute_scores.csv",
            "MOS range (1, 100): chaofengc/IQA-PyTorch pyiqa/dataset_info.py ('spaq'); we accept 0-100",
        ),
        notes="xlsx is read with a small stdlib reader (openpyxl is not installed); a CSV export is also accepted",
    ),
    "tad66k": DatasetInfo(
        name="tad66k",
        title="TAD66K (He et al., IJCAI 2022)",
        kind="general",
        scale=Scale(1.0, 10.0, None),
        files={"ratings": ("labels/merge/train.csv", "labels/merge/test.csv")},  # read every one present
        image_dirs=("imgs", "TAD66K", "images"),
        sources=(
            "labels/merge/{train,test}.csv with columns image,score: woshidandan/TANet-image-aesthetics-and-"
            "quality-assessment code/TAD66K/dataset.py (row['image'], row['score'] / 10) and Ry3nG/SSIRA constants",
            "images under imgs/: a public IAA data-preparation script (code index)",
        ),
        notes="score range 1-10 taken from the TAD66K paper's rating scale (not verified in code)",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None

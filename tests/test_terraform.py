"""The Terraform in terraform/ creates what the aws backend needs, private and scoped.

`terraform init/validate/plan` need the provider registry, which these machines cannot reach, so
the configuration is checked by `terraform fmt`, checkov and by parsing the HCL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[1]
TERRAFORM_DIR = REPO / "terraform"
BUCKET_MODULE_DIR = TERRAFORM_DIR / "modules" / "private_bucket"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"

AIRFLOW_VARIABLE_KEYS = {
    "region",
    "input_bucket",
    "input_prefix",
    "work_bucket",
    "highlights_bucket",
    "results_table",
    "upload_queue_url",
    "mediaconvert_role_arn",
    "mediaconvert_endpoint",
    "sagemaker_role_arn",
    "processing_image_uri",
    "endpoint_name",
    "model_data_uri",
    "sender_email",
    "recipient_emails",
    "link_expiry_seconds",
}

# Actions without resource-level permissions: AWS only accepts "*" as their resource.
# Actions the Service Authorization Reference lists without a resource type.
AWS_FORCED_STAR_ACTIONS = {
    "cloudwatch:PutMetricData",
    "ecr:GetAuthorizationToken",
    "mediaconvert:DescribeEndpoints",
    "mediaconvert:Probe",
    "sagemaker:ListProcessingJobs",
}

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


@dataclass(frozen=True)
class Config:
    """One Terraform module directory, parsed: blocks keyed by type and name."""

    resources: dict[str, dict[str, dict[str, Any]]]
    data: dict[str, dict[str, dict[str, Any]]]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    modules: dict[str, dict[str, Any]]
    terraform: list[dict[str, Any]]
    source: dict[str, str]

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        assert name in self.resources.get(rtype, {}), f"missing resource {rtype}.{name}"
        return self.resources[rtype][name]

    def doc(self, name: str) -> dict[str, Any]:
        docs = self.data.get("aws_iam_policy_document", {})
        assert name in docs, f"missing data.aws_iam_policy_document.{name}"
        return docs[name]


def _unwrap_blocks(value: Any) -> Any:
    """python-hcl2 gives every nested block as a list; a lone block becomes the block itself."""
    if isinstance(value, dict):
        return {k: _unwrap_blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_unwrap_blocks(v) for v in value]
        return items[0] if len(items) == 1 and isinstance(items[0], dict) else items
    return value


def _parse_dir(path: Path) -> Config:
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    data: dict[str, dict[str, dict[str, Any]]] = {}
    variables: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    modules: dict[str, dict[str, Any]] = {}
    terraform: list[dict[str, Any]] = []
    source: dict[str, str] = {}
    for tf in sorted(path.glob("*.tf")):
        text = tf.read_text()
        source[tf.name] = text
        parsed = hcl2.loads(text, serialization_options=_OPTIONS)
        for kind, target in (("resource", resources), ("data", data)):
            for block in _as_list(_unwrap_blocks(parsed.get(kind, []))):
                for rtype, named in block.items():
                    target.setdefault(rtype, {}).update(named)
        for kind, target in (("variable", variables), ("output", outputs), ("module", modules)):
            for block in _as_list(_unwrap_blocks(parsed.get(kind, []))):
                target.update(block)
        terraform.extend(_as_list(_unwrap_blocks(parsed.get("terraform", []))))
    return Config(resources, data, variables, outputs, modules, terraform, source)


@pytest.fixture(scope="module")
def root() -> Config:
    return _parse_dir(TERRAFORM_DIR)


@pytest.fixture(scope="module")
def bucket_module() -> Config:
    return _parse_dir(BUCKET_MODULE_DIR)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return _as_list(doc.get("statement", []))


def _referenced_doc(expression: str) -> str:
    match = re.fullmatch(
        r"\$\{data\.aws_iam_policy_document\.(\w+)(\[[^\]]+\])?\.json\}", expression
    )
    assert match, f"policy is not a data.aws_iam_policy_document reference: {expression}"
    return match.group(1)


def _identity_policy_docs(cfg: Config) -> Iterator[tuple[str, dict[str, Any]]]:
    """Policy documents attached to IAM identities (roles, managed policies)."""
    for rtype in ("aws_iam_role_policy", "aws_iam_policy"):
        for name, body in cfg.resources.get(rtype, {}).items():
            doc_name = _referenced_doc(body["policy"])
            yield f"{rtype}.{name} ({doc_name})", cfg.doc(doc_name)


def _conditions(statement: dict[str, Any]) -> list[dict[str, Any]]:
    return _as_list(statement.get("condition", []))


def _dag_statements(root: Config, sid: str, doc: str = "airflow") -> dict[str, Any]:
    found = [s for s in _statements(root.doc(doc)) if s.get("sid") == sid]
    assert len(found) == 1, f"expected one statement {sid!r} in {doc}, found {len(found)}"
    return found[0]


# --- formatting and static analysis -------------------------------------------------------------


def test_terraform_files_are_formatted() -> None:
    terraform = shutil.which("terraform") or "/usr/local/bin/terraform"
    if not Path(terraform).exists():
        reason = "terraform binary not installed (expected at /usr/local/bin/terraform)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI machines have it")
        pytest.skip(reason)
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def test_checkov_finds_no_failed_checks() -> None:
    if not CHECKOV.exists():
        pytest.fail(
            f"{CHECKOV} is missing: `make test` creates it (python3.11 -m venv .venv-checkov && "
            ".venv-checkov/bin/pip install checkov==3.3.30); CI always does"
        )
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0 and not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, f"checkov scanned too little: {summary}"


def test_every_checkov_skip_gives_a_reason(root: Config, bucket_module: Config) -> None:
    for cfg in (root, bucket_module):
        for name, text in cfg.source.items():
            for line in text.splitlines():
                if "checkov:skip" in line:
                    assert re.search(r"#checkov:skip=CKV2?_AWS_\d+:\S.{10,}", line), (
                        f"{name}: skip without a reason: {line.strip()}"
                    )


# --- versions and variables ---------------------------------------------------------------------


def test_pins_aws_provider_6_and_terraform_1_5(root: Config) -> None:
    (block,) = root.terraform
    assert block["required_version"] == ">= 1.5"
    assert block["required_providers"]["aws"] == {"source": "hashicorp/aws", "version": "~> 6.0"}


@pytest.mark.parametrize("module_dir", [TERRAFORM_DIR, BUCKET_MODULE_DIR], ids=["root", "bucket"])
def test_every_variable_is_typed_and_described(module_dir: Path) -> None:
    variables = _parse_dir(module_dir).variables
    assert variables
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(body.get("description", "")) > 10, f"variable {name} has no description"


def test_email_variables_are_validated_and_recipients_are_a_list(root: Config) -> None:
    assert root.variables["recipient_emails"]["type"] == "${list(string)}"
    for name in ("sender_email", "recipient_emails", "input_prefix", "link_expiry_seconds"):
        assert root.variables[name].get("validation"), f"variable {name} is not validated"


# --- buckets ------------------------------------------------------------------------------------


def test_three_data_buckets_use_the_private_bucket_module(root: Config) -> None:
    for name in ("input_bucket", "work_bucket", "highlights_bucket"):
        call = root.modules[name]
        assert call["source"] == "./modules/private_bucket"
        assert call["kms_key_arn"] == "${aws_kms_key.main.arn}"
        assert call["log_bucket"] == "${aws_s3_bucket.logs.id}"


def test_work_bucket_expires_frames_features_and_scores(
    root: Config, bucket_module: Config
) -> None:
    work = root.modules["work_bucket"]
    assert work["expiring_prefixes"] == [
        "${local.frames_prefix}",
        "${local.proxies_prefix}",
        "${local.normalized_prefix}",
        "${local.features_prefix}",
        "${local.scores_prefix}",
    ]
    assert work["expiry_days"] == "${var.work_retention_days}"
    lifecycle = bucket_module.resource("aws_s3_bucket_lifecycle_configuration", "this")
    (dynamic,) = _as_list(lifecycle["dynamic"])
    rule = dynamic["rule"]
    assert rule["for_each"] == "${var.expiring_prefixes}"
    assert rule["content"]["filter"]["prefix"] == "${rule.value}"
    assert rule["content"]["expiration"]["days"] == "${var.expiry_days}"


def _assert_public_access_blocked(block: dict[str, Any]) -> None:
    for flag in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[flag] is True, f"{flag} is not true"


def _assert_tls_only(doc: dict[str, Any], bucket_ref: str) -> None:
    denies = [
        s
        for s in _statements(doc)
        if s.get("effect") == "Deny"
        and any(
            c["variable"] == "aws:SecureTransport" and c["values"] == ["false"]
            for c in _conditions(s)
        )
    ]
    assert len(denies) == 1, "no Deny on aws:SecureTransport = false"
    assert set(denies[0]["resources"]) == {bucket_ref, bucket_ref[:-1] + "}/*"}
    assert denies[0]["actions"] == ["s3:*"]


def test_data_buckets_block_public_access(bucket_module: Config) -> None:
    _assert_public_access_blocked(
        bucket_module.resource("aws_s3_bucket_public_access_block", "this")
    )
    ownership = bucket_module.resource("aws_s3_bucket_ownership_controls", "this")
    assert ownership["rule"]["object_ownership"] == "BucketOwnerEnforced"


def test_data_buckets_are_encrypted_with_the_kms_key(bucket_module: Config) -> None:
    sse = bucket_module.resource("aws_s3_bucket_server_side_encryption_configuration", "this")
    default = sse["rule"]["apply_server_side_encryption_by_default"]
    assert default == {"sse_algorithm": "aws:kms", "kms_master_key_id": "${var.kms_key_arn}"}


def test_data_buckets_are_versioned(bucket_module: Config) -> None:
    versioning = bucket_module.resource("aws_s3_bucket_versioning", "this")
    assert versioning["versioning_configuration"]["status"] == "Enabled"


def test_data_buckets_accept_tls_only(bucket_module: Config) -> None:
    policy = bucket_module.resource("aws_s3_bucket_policy", "this")
    doc = bucket_module.doc(_referenced_doc(policy["policy"]))
    _assert_tls_only(doc, "${aws_s3_bucket.this.arn}")


def test_access_log_bucket_is_private_versioned_and_tls_only(root: Config) -> None:
    _assert_public_access_blocked(root.resource("aws_s3_bucket_public_access_block", "logs"))
    versioning = root.resource("aws_s3_bucket_versioning", "logs")
    assert versioning["versioning_configuration"]["status"] == "Enabled"
    sse = root.resource("aws_s3_bucket_server_side_encryption_configuration", "logs")
    assert sse["rule"]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"
    policy = root.resource("aws_s3_bucket_policy", "logs")
    _assert_tls_only(root.doc(_referenced_doc(policy["policy"])), "${aws_s3_bucket.logs.arn}")


# --- upload events ------------------------------------------------------------------------------


def test_new_uploads_under_the_input_prefix_notify_the_queue(root: Config) -> None:
    notification = root.resource("aws_s3_bucket_notification", "uploads")
    assert notification["bucket"] == "${module.input_bucket.id}"
    (queue,) = _as_list(notification["queue"])
    assert queue["queue_arn"] == "${aws_sqs_queue.uploads.arn}"
    assert queue["filter_prefix"] == "${var.input_prefix}"
    assert queue["events"] == ["s3:ObjectCreated:*"]
    assert "${aws_sqs_queue_policy.uploads}" in notification["depends_on"]


def test_upload_queue_is_encrypted_and_dead_letters(root: Config) -> None:
    queue = root.resource("aws_sqs_queue", "uploads")
    dlq = root.resource("aws_sqs_queue", "uploads_dlq")
    assert queue["kms_master_key_id"] == dlq["kms_master_key_id"] == "${aws_kms_key.main.arn}"
    assert "aws_sqs_queue.uploads_dlq.arn" in queue["redrive_policy"]
    allow = root.resource("aws_sqs_queue_redrive_allow_policy", "uploads_dlq")
    assert "aws_sqs_queue.uploads.arn" in allow["redrive_allow_policy"]


def test_only_the_input_bucket_may_send_to_the_queue(root: Config) -> None:
    policy = root.resource("aws_sqs_queue_policy", "uploads")
    doc = root.doc(_referenced_doc(policy["policy"]))
    allows = [s for s in _statements(doc) if s.get("effect", "Allow") == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["actions"] == ["sqs:SendMessage"]
    assert allow["principals"]["identifiers"] == ["s3.amazonaws.com"]
    source_arns = [c["values"] for c in _conditions(allow) if c["variable"] == "aws:SourceArn"]
    assert source_arns == [["${module.input_bucket.arn}"]]


def test_kms_key_lets_s3_encrypt_queue_messages(root: Config) -> None:
    key = root.resource("aws_kms_key", "main")
    assert key["enable_key_rotation"] is True
    doc = root.doc(_referenced_doc(key["policy"]))
    s3 = [s for s in _statements(doc) if s["principals"]["identifiers"] == ["s3.amazonaws.com"]]
    assert len(s3) == 1 and set(s3[0]["actions"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}


# --- results table ------------------------------------------------------------------------------


def test_results_table_keys_recovery_and_encryption(root: Config) -> None:
    table = root.resource("aws_dynamodb_table", "results")
    assert table["hash_key"] == "match_id"
    assert table["range_key"] == "start_ms"
    attributes = {a["name"]: a["type"] for a in _as_list(table["attribute"])}
    assert attributes == {"match_id": "S", "start_ms": "N"}
    assert table["point_in_time_recovery"]["enabled"] is True
    assert table["server_side_encryption"] == {
        "enabled": True,
        "kms_key_arn": "${aws_kms_key.main.arn}",
    }


# --- IAM ----------------------------------------------------------------------------------------


def test_every_identity_policy_is_one_of_the_three_scoped_ones(root: Config) -> None:
    attached = {label.split(" ")[0] for label, _ in _identity_policy_docs(root)}
    assert attached == {
        "aws_iam_role_policy.mediaconvert",
        "aws_iam_role_policy.sagemaker",
        "aws_iam_policy.airflow",
    }


def test_no_identity_policy_allows_a_wildcard_action(root: Config) -> None:
    for label, doc in _identity_policy_docs(root):
        for statement in _statements(doc):
            for action in statement["actions"]:
                assert action != "*" and not action.endswith(":*"), f"{label}: action {action}"


def test_identity_policies_name_resources_except_where_aws_forces_star(root: Config) -> None:
    for label, doc in _identity_policy_docs(root):
        for statement in _statements(doc):
            resources = _as_list(statement["resources"])
            assert resources, f"{label}: statement {statement.get('sid')} names no resource"
            if "*" in resources:
                assert resources == ["*"]
                assert set(statement["actions"]) <= AWS_FORCED_STAR_ACTIONS, (
                    f"{label}: {statement['actions']} on '*' but AWS supports resource ARNs"
                )


def test_each_forced_star_statement_says_so_in_a_comment(root: Config) -> None:
    lines = root.source["iam.tf"].splitlines()
    star_lines = [i for i, line in enumerate(lines) if re.search(r'resources\s*=\s*\["\*"\]', line)]
    assert len(star_lines) == 4
    for i in star_lines:
        start = max(j for j in range(i) if lines[j].strip() == "statement {")
        above = start - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            above -= 1
        comment = " ".join(line.strip() for line in lines[above + 1 : start])
        assert 'AWS forces "*"' in comment, (
            f"iam.tf:{start + 1}: '*' resource without a comment saying AWS forces it"
        )


def _s3_grants(doc: dict[str, Any]) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in _statements(doc):
        for action in statement["actions"]:
            if action.startswith("s3:"):
                grants.setdefault(action, set()).update(statement["resources"])
    return grants


def test_mediaconvert_reads_the_input_prefix_and_writes_frames_and_clips_only(
    root: Config,
) -> None:
    grants = _s3_grants(root.doc("mediaconvert"))
    assert grants == {
        "s3:GetObject": {
            "${local.input_objects}",
            "${local.bucket_arns.work}/${local.normalized_prefix}*",
        },
        "s3:PutObject": {
            "${local.bucket_arns.work}/${local.frames_prefix}*",
            "${local.bucket_arns.work}/${local.proxies_prefix}*",
            "${local.bucket_arns.work}/${local.normalized_prefix}*",
            "${local.bucket_arns.highlights}/${local.highlights_prefix}*/clips/*",
            "${local.bucket_arns.highlights}/${local.highlights_prefix}*/reel*",
        },
    }
    iam_locals = hcl2.loads(root.source["iam.tf"], serialization_options=_OPTIONS)["locals"][0]
    assert iam_locals["input_objects"] == "${local.bucket_arns.input}/${var.input_prefix}*"


def test_mediaconvert_role_trusts_only_mediaconvert(root: Config) -> None:
    (statement,) = _statements(root.doc("mediaconvert_assume"))
    assert statement["principals"]["identifiers"] == ["mediaconvert.amazonaws.com"]


def test_sagemaker_role_pulls_from_the_repository_and_writes_its_logs(root: Config) -> None:
    statements = {s["sid"]: s for s in _statements(root.doc("sagemaker"))}
    assert statements["PullModelImages"]["resources"] == ["${aws_ecr_repository.model.arn}"]
    assert all(
        ":log-group:/aws/sagemaker/" in r for r in statements["WriteSageMakerLogs"]["resources"]
    )
    assert statements["WindowResults"]["resources"] == ["${aws_dynamodb_table.results.arn}"]
    assert statements["ReadModelArchives"]["resources"] == [
        "${local.bucket_arns.highlights}/${local.models_prefix}*"
    ]


def test_workers_pass_each_role_only_to_its_service(root: Config) -> None:
    passes = [s for s in _statements(root.doc("airflow")) if "iam:PassRole" in s["actions"]]
    targets = {}
    for statement in passes:
        assert statement["actions"] == ["iam:PassRole"]
        (condition,) = _conditions(statement)
        assert (condition["test"], condition["variable"]) == ("StringEquals", "iam:PassedToService")
        (role,) = statement["resources"]
        targets[role] = condition["values"]
    assert targets == {
        "${aws_iam_role.mediaconvert.arn}": ["mediaconvert.amazonaws.com"],
        "${aws_iam_role.sagemaker.arn}": ["sagemaker.amazonaws.com"],
    }


def test_workers_send_email_only_from_the_sender(root: Config) -> None:
    statement = _dag_statements(root, "SendHighlightEmail")
    assert statement["resources"] == "${local.ses_identity_arns}"
    (condition,) = _conditions(statement)
    assert condition["variable"] == "ses:FromAddress"
    assert condition["values"] == ["${var.sender_email}"]


def test_workers_reach_the_queue_table_and_processing_jobs(root: Config) -> None:
    assert _dag_statements(root, "ConsumeUploadQueue")["resources"] == [
        "${aws_sqs_queue.uploads.arn}"
    ]
    assert _dag_statements(root, "WindowResults")["resources"] == [
        "${aws_dynamodb_table.results.arn}"
    ]
    assert _dag_statements(root, "RunProcessingJobs")["resources"] == [
        "${local.processing_job_arn}"
    ]
    objects = _dag_statements(root, "ReadWritePipelineObjects")
    assert set(objects["actions"]) == {"s3:GetObject", "s3:PutObject"}


def test_workers_delete_only_scratch_objects_in_the_work_bucket(root: Config) -> None:
    deletes = _s3_grants(root.doc("airflow"))["s3:DeleteObject"]
    assert deletes == {
        "${local.bucket_arns.work}/${local.frames_prefix}*",
        "${local.bucket_arns.work}/${local.proxies_prefix}*",
        "${local.bucket_arns.work}/${local.features_prefix}*",
        "${local.bucket_arns.work}/${local.scores_prefix}*",
    }


def test_worker_policy_can_be_attached_to_an_existing_role(root: Config) -> None:
    attachment = root.resource("aws_iam_role_policy_attachment", "airflow")
    assert attachment["role"] == "${var.airflow_role_name}"
    assert attachment["policy_arn"] == "${aws_iam_policy.airflow.arn}"


# --- model serving ------------------------------------------------------------------------------


def test_ecr_repository_scans_on_push_with_immutable_tags_and_kms(root: Config) -> None:
    repo = root.resource("aws_ecr_repository", "model")
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert repo["image_scanning_configuration"]["scan_on_push"] is True
    assert repo["encryption_configuration"] == {
        "encryption_type": "KMS",
        "kms_key": "${aws_kms_key.main.arn}",
    }


def test_endpoint_is_built_from_the_variables(root: Config) -> None:
    model = root.resource("aws_sagemaker_model", "highlights")
    assert model["primary_container"]["image"] == "${var.model_image_uri}"
    assert model["primary_container"]["model_data_url"] == "${var.model_data_uri}"
    assert model["execution_role_arn"] == "${aws_iam_role.sagemaker.arn}"
    config = root.resource("aws_sagemaker_endpoint_configuration", "highlights")
    variant = config["production_variants"]
    assert variant["instance_type"] == "${var.endpoint_instance_type}"
    assert variant["initial_instance_count"] == "${var.endpoint_instance_count}"
    assert variant["model_name"] == "${aws_sagemaker_model.highlights[0].name}"
    endpoint = root.resource("aws_sagemaker_endpoint", "highlights")
    assert endpoint["endpoint_config_name"] == (
        "${aws_sagemaker_endpoint_configuration.highlights[0].name}"
    )


def test_model_archive_must_live_where_the_sagemaker_role_may_read(root: Config) -> None:
    policy = root.resource("aws_iam_role_policy", "sagemaker")
    condition = policy["lifecycle"]["precondition"]["condition"]
    assert "${local.bucket_names.highlights}/${local.models_prefix}" in condition
    assert "var.model_data_uri" in condition


def _validation_regex(root: Config, name: str) -> re.Pattern[str]:
    (validation,) = _as_list(root.variables[name]["validation"])
    found = re.search(r'regex\("((?:[^"\\]|\\.)*)"', validation["condition"])
    assert found, validation["condition"]
    return re.compile(found.group(1).replace("\\\\", "\\"))


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        ("s3://hl-123-eu-west-1-highlights/models/model.tar.gz", True),
        ("s3://hl-123-eu-west-1-highlights/models/v2/model.tar.gz", True),
        ("s3://hl-123-eu-west-1-highlights/models/final-model.tar.gz", False),
        ("s3://hl-123-eu-west-1-highlights/models/model.tar.gz.bak", False),
    ],
)
def test_model_archive_must_be_named_model_tar_gz(root: Config, uri: str, accepted: bool) -> None:
    assert bool(_validation_regex(root, "model_data_uri").search(uri)) is accepted


def test_sagemaker_role_publishes_only_sagemaker_metrics(root: Config) -> None:
    statement = _dag_statements(root, "PublishJobMetrics", doc="sagemaker")
    assert statement["actions"] == ["cloudwatch:PutMetricData"]
    (condition,) = _conditions(statement)
    assert condition["variable"] == "cloudwatch:namespace"
    assert condition["values"] == ["/aws/sagemaker/*"]


def test_workers_may_find_the_mediaconvert_job_of_an_earlier_try(root: Config) -> None:
    actions = {a for s in _statements(root.doc("airflow")) for a in s["actions"]}
    assert {"mediaconvert:ListJobs", "mediaconvert:GetJob"} <= actions


def test_autoscaling_is_count_gated_target_tracking(root: Config) -> None:
    target = root.resource("aws_appautoscaling_target", "endpoint")
    policy = root.resource("aws_appautoscaling_policy", "endpoint")
    for block in (target, policy):
        assert block["count"] == "${local.autoscaling_enabled ? 1 : 0}"
    assert target["scalable_dimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert policy["policy_type"] == "TargetTrackingScaling"
    metric = policy["target_tracking_scaling_policy_configuration"]
    assert metric["predefined_metric_specification"]["predefined_metric_type"] == (
        "SageMakerVariantInvocationsPerInstance"
    )


def test_ses_identity_is_created_for_the_sender(root: Config) -> None:
    sender = root.resource("aws_ses_email_identity", "sender")
    assert sender["email"] == "${var.sender_email}"


# --- what the DAG reads -------------------------------------------------------------------------


def test_airflow_variables_output_has_exactly_the_dag_keys(root: Config) -> None:
    value = root.outputs["airflow_variables"]["value"]
    assert set(value) == AIRFLOW_VARIABLE_KEYS
    assert value["recipient_emails"] == "${var.recipient_emails}"
    assert value["upload_queue_url"] == "${aws_sqs_queue.uploads.url}"
    assert value["results_table"] == "${aws_dynamodb_table.results.name}"


def test_every_output_is_described(root: Config) -> None:
    for name, body in root.outputs.items():
        assert body.get("description"), f"output {name} has no description"


def test_readme_shows_how_to_hand_the_outputs_to_airflow() -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text()
    assert "terraform output -json airflow_variables > highlights_aws.json" in readme
    assert 'highlights_aws "$(cat highlights_aws.json)"' in readme
    assert "airflow variables set" in readme
    assert "registry" in readme

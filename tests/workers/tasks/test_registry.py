"""The one list of job types and the workers' handlers agree, name for name."""

from __future__ import annotations

import typing

from app.jobs import registry
from app.jobs.schemas import JobCreate
from workers.tasks import HANDLERS


def test_every_type_has_a_handler_and_every_handler_a_type() -> None:
    names = [t.name for t in registry.JOB_TYPES]
    assert len(names) == len(set(names)), names
    assert set(HANDLERS) == set(names)


def test_each_type_is_found_by_name_and_its_params_carry_the_name() -> None:
    for job_type in registry.JOB_TYPES:
        assert registry.get(job_type.name) is job_type
        field = job_type.params.model_fields["type"]
        assert typing.get_args(field.annotation) == (job_type.name,)
        assert field.default == job_type.name
    assert registry.get("no-such-type") is None


def test_the_request_union_has_exactly_the_public_types() -> None:
    members = typing.get_args(typing.get_args(JobCreate)[0])
    public = {t.params for t in registry.JOB_TYPES if not t.internal}
    assert set(members) == public
    assert {t.name for t in registry.all_types(public_only=True)} == {
        t.name for t in registry.JOB_TYPES if not t.internal
    }

"""A ContainerSpec in docker-py's terms, without an engine: what the create call is given,
checked through docker-py's own HostConfig (which validates and names the engine's keys)."""

from __future__ import annotations

from docker.types import HostConfig

from jobs.plan import ContainerSpec, Mount
from scheduler.docker_specs import container_args, host_config_args

API_VERSION = "1.43"


def host(spec: ContainerSpec) -> HostConfig:
    return HostConfig(version=API_VERSION, **host_config_args(spec))


def test_a_bare_spec_sets_no_limits_and_no_privileges() -> None:
    config = host(ContainerSpec(image="app:1"))
    assert config == {"Binds": [], "NetworkMode": "default"}


def test_a_memory_limit_allows_no_swap_beyond_it() -> None:
    """memswap_limit equals memory: a job over its limit is killed (oom_killed), not swapping."""
    config = host(ContainerSpec(image="app:1", memory=64 * 2**20))
    assert config["Memory"] == config["MemorySwap"] == 64 * 2**20


def test_limits_privileges_and_logging_reach_the_host_config() -> None:
    spec = ContainerSpec(
        image="app:1",
        cpus=1.5,
        pids_limit=64,
        read_only=True,
        cap_drop=("ALL",),
        cap_add=("CHOWN",),
        no_new_privileges=True,
        network="none",
        volumes_from=("app",),
        log_driver="json-file",
        log_options={"max-size": "1m"},
    )
    config = host(spec)
    assert config["NanoCpus"] == 1_500_000_000
    assert config["PidsLimit"] == 64
    assert config["ReadonlyRootfs"] is True
    assert (config["CapDrop"], config["CapAdd"]) == (["ALL"], ["CHOWN"])
    assert config["SecurityOpt"] == ["no-new-privileges:true"]
    assert (config["NetworkMode"], config["VolumesFrom"]) == ("none", ["app"])
    assert config["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}


def test_volumes_from_read_only_gives_each_source_the_ro_mode() -> None:
    """The plan's read-only flag becomes Docker's ':ro' on every (resolved) source."""
    spec = ContainerSpec(image="app:1", volumes_from=("a", "b"), volumes_from_read_only=True)
    assert host(spec)["VolumesFrom"] == ["a:ro", "b:ro"]


def test_mounts_are_binds_with_their_mode_and_volumes_of_the_container() -> None:
    mounts = (Mount("data", "/data"), Mount("/etc/app", "/config", read_only=True))
    spec = ContainerSpec(image="app:1", mounts=mounts)
    assert host(spec)["Binds"] == ["data:/data:rw", "/etc/app:/config:ro"]
    assert container_args(spec, name="n", labels={})["volumes"] == ["/data", "/config"]


def test_the_daemons_labels_win_over_the_specs_own() -> None:
    spec = ContainerSpec(image="app:1", labels={"crontainer.job": "forged", "team": "a"})
    labels = container_args(spec, name="n", labels={"crontainer.job": "real"})["labels"]
    assert labels == {"crontainer.job": "real", "team": "a"}


def test_the_container_arguments_of_an_ops_tool() -> None:
    """A tool fed on stdin, without the image's health check; command and entrypoint as lists."""
    spec = ContainerSpec(
        image="ops:1",
        command=("python", "-m", "jobs.tools.logship"),
        entrypoint=("/sbin/tini", "--"),
        env={"A": "1"},
        user="1000",
        workdir="/work",
        stop_signal="SIGINT",
        stdin=True,
        healthcheck=False,
    )
    assert container_args(spec, name="d.ship.1", labels={}) == {
        "image": "ops:1",
        "command": ["python", "-m", "jobs.tools.logship"],
        "entrypoint": ["/sbin/tini", "--"],
        "environment": {"A": "1"},
        "volumes": None,
        "user": "1000",
        "working_dir": "/work",
        "labels": {},
        "stop_signal": "SIGINT",
        "hostname": None,
        "name": "d.ship.1",
        "stdin_open": True,
        "healthcheck": {"Test": ["NONE"]},
    }


def test_a_spec_without_command_keeps_the_images_and_its_health_check() -> None:
    arguments = container_args(ContainerSpec(image="app:1"), name="n", labels={})
    assert (arguments["command"], arguments["entrypoint"], arguments["healthcheck"]) == (
        None,
        None,
        None,
    )
    assert arguments["stdin_open"] is False

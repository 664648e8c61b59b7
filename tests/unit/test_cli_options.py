"""The CLI's option names: help on every option, one name per meaning, old names still parse."""

from __future__ import annotations

import click
import pytest

from gearshift.cli import cli, main


def _commands(cmd=cli, path=()):
    ctx = click.Context(cmd)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            yield from _commands(cmd.get_command(ctx, name), path + (name,))
    else:
        yield " ".join(path), cmd


def _visible_names(cmd):
    """(option, the names --help shows): old names kept as hidden aliases are left out."""
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden:
            old = getattr(p, "old_names", ())
            yield p, [n for n in p.opts + p.secondary_opts if n not in old]


def test_every_option_has_help():
    missing = [f"{path} {'/'.join(p.opts)}" for path, cmd in _commands() for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not missing, f"options without help: {missing}"


def test_one_name_per_meaning():
    """No visible option is named after an old or ambiguous spelling."""
    clashes = []
    for path, cmd in _commands():
        for p, names in _visible_names(cmd):
            for n in names:
                if n in ("--output", "--gpu"):
                    clashes.append(f"{path} {n}")
                # --trace is a kernel trace file everywhere (a data folder is --data)
                if n == "--trace" and getattr(p.type, "dir_okay", True):
                    clashes.append(f"{path} --trace accepts a folder")
    assert not clashes, clashes


@pytest.mark.parametrize("old,new", [
    (["report", "f.json", "--output", "x.txt"], ["report", "f.json", "--out", "x.txt"]),
    (["profile", "t.json", "p.json", "--output", "x.json"],
     ["profile", "t.json", "p.json", "--out", "x.json"]),
])
def test_old_names_are_hidden_aliases(old, new, capsys):
    """The old spelling reaches the same code as the new one (here: the same one-line error)."""
    outs = []
    for argv in (old, new):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        outs.append((exc.value.code, capsys.readouterr().err))
    assert outs[0] == outs[1] and outs[0][0] != 0
    assert "no such option" not in outs[0][1].lower()


def test_old_names_are_not_in_help():
    from click.testing import CliRunner

    for argv, new, old in [(["report", "--help"], "--out", "--output"),
                           (["demo", "--help"], "--preset", "--gpu"),
                           (["clock", "hold", "--help"], "--gpu-index", "--gpu "),
                           (["tune", "power-limit", "--help"], "--data", "--trace")]:
        text = CliRunner().invoke(cli, argv).output
        assert new in text and old not in text, text


def test_clock_hold_takes_the_gpu_index_under_both_names():
    ctx = click.Context(cli)
    hold = cli.get_command(ctx, "clock").get_command(ctx, "hold")
    for flag in ("--gpu-index", "--gpu"):
        params = hold.make_context("hold", ["1200", flag, "3"]).params
        assert params["gpu"] == 3

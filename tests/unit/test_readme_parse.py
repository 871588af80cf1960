"""The README's directives (tests/fixtures/readme.py): parsing, and the checks that need no stack."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import readme

REPO = Path(__file__).resolve().parents[2]
FENCE = "```"


def parse(*lines: str) -> list[readme.Block]:
    return readme.blocks("\n".join(lines) + "\n")


def one_block(body: str, directive: str = "run") -> readme.Block:
    (block,) = parse("## Section", f"<!-- readme-test: {directive} -->", f"{FENCE}sh", *body.splitlines(), FENCE)
    return block


def test_a_block_without_a_directive_is_refused_with_its_line_number():
    with pytest.raises(readme.ReadmeError, match=r"README.md line 4 \(Run it\): a fenced block without"):
        parse("# title", "", "## Run it", f"{FENCE}sh", "podctl up", FENCE)


def test_a_directive_must_be_followed_by_its_block():
    with pytest.raises(readme.ReadmeError, match="line 1: a directive not followed by a fenced block"):
        parse("<!-- readme-test: run -->", "some prose", f"{FENCE}sh", "true", FENCE)
    with pytest.raises(readme.ReadmeError, match="line 2: a directive not followed"):
        parse("text", "<!-- readme-test: run -->")


def test_unknown_directives_and_missing_arguments_are_refused():
    with pytest.raises(readme.ReadmeError, match="unknown directive 'skip'"):
        parse("<!-- readme-test: skip -->", FENCE, "x", FENCE)
    with pytest.raises(readme.ReadmeError, match='serve "TEXT"'):
        parse("<!-- readme-test: serve -->", FENCE, "podctl up", FENCE)
    with pytest.raises(readme.ReadmeError, match="elsewhere needs a target"):
        parse("<!-- readme-test: elsewhere -->", FENCE, "x", FENCE)
    with pytest.raises(readme.ReadmeError, match="never closes"):
        parse("<!-- readme-test: run -->", FENCE, "x")


def test_a_block_keeps_its_directive_argument_language_line_and_section():
    (serve, shown) = parse("## Your first pod", "", '<!-- readme-test: serve "all 4 pods ready" -->', f"{FENCE}sh",
                           "podctl up", FENCE, "<!-- readme-test: file a/b.toml -->", f"{FENCE}toml", "x = 1", FENCE)
    assert (serve.directive, serve.argument, serve.lang, serve.line, serve.section) == \
        ("serve", "all 4 pods ready", "sh", 4, "Your first pod")
    assert serve.body == "podctl up\n" and serve.where == "README.md line 4 (Your first pod)"
    assert (shown.directive, shown.argument, shown.body) == ("file", "a/b.toml", "x = 1\n")


def test_an_arrow_comment_is_the_expected_output_and_dots_stand_for_anything():
    (command,) = readme.commands(one_block("podctl wait --ready   # -> all 4 pods ready"))
    assert (command.answer, command.exit_code) == ("all 4 pods ready", 0)
    assert command.text == "podctl wait --ready   # -> all 4 pods ready"
    assert readme.matches("... pod/hello configured ...", "pod/gateway unchanged\npod/hello configured\npod/x gone\n")
    assert readme.matches('{"id":1,...}', '{"id":1,"username":"john_doe"}\n')
    assert readme.matches("POD READY  STATUS", "POD   READY\tSTATUS\n")
    assert not readme.matches("all 4 pods ready", "all 3 pods ready")
    assert not readme.matches("... configured", "pod/hello deleted")


def test_an_exit_comment_is_the_expected_status_and_other_comments_are_prose():
    status, prose = readme.commands(one_block("supervisorctl status   # exit 3: spare slots\n"
                                              "podctl down                # returns once all is free"))
    assert (status.exit_code, status.answer) == (3, None)
    assert (prose.exit_code, prose.answer) == (0, None)


def test_a_hash_inside_quotes_or_a_word_does_not_start_a_comment():
    assert readme.split_comment("grep '^x # y' f  # -> z") == ("grep '^x # y' f", "-> z")
    assert readme.split_comment('echo "a#b" a#b') == ('echo "a#b" a#b', None)
    assert readme.split_comment(r"echo \"x # y") == (r"echo \"x", "y")


def test_continuation_lines_make_one_command_numbered_by_its_first_line():
    block = one_block("echo one \\\n  two \\\n  three   # -> one two three\necho four")
    first, second = readme.commands(block)
    assert first.text == "echo one \\\n  two \\\n  three   # -> one two three"
    assert (first.answer, first.line) == ("one two three", block.line + 1)
    assert (second.text, second.line) == ("echo four", block.line + 4)


def test_a_heredoc_runs_to_its_terminator_as_one_command():
    body = "cat > pods.toml <<'EOF'\n[pods.a]\n# not a comment of the shell\ncommand = \"x\"\nEOF\nwc -l pods.toml"
    heredoc, after = readme.commands(one_block(body))
    assert heredoc.text == "cat > pods.toml <<'EOF'\n[pods.a]\n# not a comment of the shell\ncommand = \"x\"\nEOF"
    assert heredoc.answer is None and after.text == "wc -l pods.toml"
    (dashed,) = readme.commands(one_block("cat <<-END\n\tx\n\tEND"))
    assert dashed.text.endswith("\tEND")


def test_elsewhere_needs_an_existing_test_naming_the_podvisor_commands(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text('def test_vm():\n    run(["podvisor-systemd", "--state-dir", "s"])\n')
    (tmp_path / "setup.cfg").write_text("[options.entry_points]\nconsole_scripts =\n"
                                        "    podvisor-systemd = m:main\n    podctl = n:main\n")
    ok = one_block("sudo useradd podvisor\nsudo podvisor-systemd --state-dir /var/lib/p",
                   "elsewhere tests/test_x.py::test_vm")
    readme.check_elsewhere(ok, tmp_path)
    with pytest.raises(readme.ReadmeError, match="--user not in tests/test_x.py::test_vm"):
        readme.check_elsewhere(one_block("podvisor-systemd --user p", "elsewhere tests/test_x.py::test_vm"), tmp_path)
    with pytest.raises(readme.ReadmeError, match="has no test test_gone"):
        readme.check_elsewhere(one_block("true", "elsewhere tests/test_x.py::test_gone"), tmp_path)
    with pytest.raises(readme.ReadmeError, match="not a tests/...py::test_name"):
        readme.check_elsewhere(one_block("true", "elsewhere tests/test_x.py"), tmp_path)


def test_elsewhere_ci_run_needs_the_same_packages_and_the_test_command_as_its_last_line(tmp_path):
    with pytest.raises(readme.ReadmeError, match="there is no .ci/run"):
        readme.check_elsewhere(one_block("python3 -m pytest", "elsewhere .ci/run"), tmp_path)
    (tmp_path / ".ci").mkdir()
    ci = tmp_path / ".ci" / "run"
    ci.write_text("#!/bin/sh\n$SUDO apt-get install -y -qq zsh \\\n  curl >/dev/null\npython3 -m pytest\n")
    block = one_block("sudo apt-get update && sudo apt-get install -y curl zsh   # once\npython3 -m pytest",
                      "elsewhere .ci/run")
    readme.check_elsewhere(block, tmp_path)
    with pytest.raises(readme.ReadmeError, match=r"installs \['curl'\], .ci/run \['curl', 'zsh'\]"):
        readme.check_elsewhere(one_block("apt-get install curl\npython3 -m pytest", "elsewhere .ci/run"), tmp_path)
    ci.write_text("apt-get install curl zsh\npython3 -m pytest\necho done\n")
    with pytest.raises(readme.ReadmeError, match="not .ci/run's last line `echo done`"):
        readme.check_elsewhere(block, tmp_path)


def test_a_file_block_must_be_the_files_content(tmp_path):
    (tmp_path / "pod.toml").write_text("[pods.a]\ncommand = \"x\"\n")
    readme.check_file(one_block('[pods.a]\ncommand = "x"', "file pod.toml"), tmp_path)
    with pytest.raises(readme.ReadmeError, match="not the content of pod.toml"):
        readme.check_file(one_block('[pods.a]\ncommand = "y"', "file pod.toml"), tmp_path)
    with pytest.raises(readme.ReadmeError, match="not the content of gone.toml"):
        readme.check_file(one_block("x", "file gone.toml"), tmp_path)


def test_the_readme_passes_every_check_that_needs_no_stack():
    found = readme.check_without_stack((REPO / "README.md").read_text(), REPO)
    directives = {block.directive for block in found}
    assert directives == set(readme.DIRECTIVES), directives

"""The card types Metaflow's own test suite names (test_pathspec_card, test_editable_card, ...),
so that its card tests run against rayflow unchanged. Each behaves as the suite expects: the
editable ones join the rendered components with a separator, the error card raises, the
timeout card sleeps past its timeout, the refresh cards echo their data."""

from __future__ import annotations

import hashlib
import json
import random
import string
import time

from rayflow.cards.base import MetaflowCard, MetaflowCardComponent

SEPARATOR = "$&#!!@*"


class TestStringComponent(MetaflowCardComponent):
    REALTIME_UPDATABLE = True

    def __init__(self, text):
        self._text = text

    def render(self):
        return str(self._text)

    def update(self, text):
        self._text = text


class TestJSONComponent(MetaflowCardComponent):
    REALTIME_UPDATABLE = True

    def __init__(self, data):
        self._data = data

    def render(self):
        return self._data

    def update(self, data):
        self._data = data


def _salt() -> str:
    return "".join(random.choice(string.ascii_uppercase + string.digits) for _ in range(6))


class TestPathSpecCard(MetaflowCard):
    type = "test_pathspec_card"

    def render(self, task):
        return f"{task.pathspec} {_salt()}"


class _Joined(MetaflowCard):
    separator = SEPARATOR

    def render(self, task):
        return self.separator.join(str(c) for c in self._components)


class TestEditableCard(_Joined):
    type = "test_editable_card"
    ALLOW_USER_COMPONENTS = True


class TestEditableCard2(_Joined):
    type = "test_editable_card_2"
    ALLOW_USER_COMPONENTS = True


class TestNonEditableCard(_Joined):
    type = "test_non_editable_card"


class TestMockCard(MetaflowCard):
    type = "test_mock_card"

    def render(self, task):
        return str(task[self._options.get("key", "dummy_key")].data)


class TestErrorCard(MetaflowCard):
    type = "test_error_card"

    def render(self, task):
        raise Exception("Unknown Things Happened")


class TestTimeoutCard(MetaflowCard):
    type = "test_timeout_card"

    def render(self, task):
        time.sleep(float(self._options.get("timeout", 10)))
        return task.pathspec


_REFRESH_PAGE = ("<html><script>var METAFLOW_RELOAD_TOKEN = \"[METAFLOW_RELOAD_TOKEN]\"\n"
                 "window.metaflow_card_update = function(data) {"
                 "document.querySelector(\"h1\").innerHTML = JSON.stringify(data);}</script>"
                 "<h1>{pathspec}</h1><h1>{content}</h1></html>")


class TestRefreshCard(MetaflowCard):
    type = "test_refresh_card"
    ALLOW_USER_COMPONENTS = True
    RUNTIME_UPDATABLE = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ALWAYS

    def _page(self, task, data):
        return _REFRESH_PAGE.replace("{pathspec}", task.pathspec).replace(
            "{content}", json.dumps((data or {}).get("user")))

    def render(self, task):
        return self._page(task, self.runtime_data)

    def render_runtime(self, task, data):
        return self._page(task, data)

    def refresh(self, task, data):
        return data


class TestRefreshComponentCard(MetaflowCard):
    type = "test_component_refresh_card"
    ALLOW_USER_COMPONENTS = True
    RUNTIME_UPDATABLE = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ONCHANGE

    def render(self, task):
        return _REFRESH_PAGE.replace("{pathspec}", task.pathspec).replace(
            "{content}", json.dumps(self._components))

    def render_runtime(self, task, data):
        return self.render(task)

    def refresh(self, task, data):
        return data["components"]

    def reload_content_token(self, task, data):
        if getattr(task, "finished", False):
            return "final"
        joined = ",".join("".join(x) for v in data["components"].values() for x in v)
        return "runtime-" + hashlib.sha256(joined.encode()).hexdigest()

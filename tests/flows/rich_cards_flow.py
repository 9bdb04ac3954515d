"""The card components Metaflow 2.19 added (ValueBox, JSONViewer, YAMLViewer, EventsTimeline,
PageComponent), appended to a blank card by a running step."""

from rayflow import FlowSpec, card, current, step
from rayflow.cards import EventsTimeline, JSONViewer, PageComponent, ValueBox, YAMLViewer


class RichCardsFlow(FlowSpec):

    @card(type="blank")
    @step
    def start(self):
        box = ValueBox(title="Rows", value=0, theme="success")
        current.card.append(box)
        box.update(value=1234567, change_indicator="Up 3% from yesterday")
        events = EventsTimeline(title="Calls", max_events=2)
        current.card.append(events)
        for i in range(3):
            events.update({"call": f"api-{i}"}, style_theme="info",
                          payloads={"body": JSONViewer({"i": i})})
        current.card.append(PageComponent(title="Config", subtitle="as loaded",
                                          contents=[YAMLViewer({"lr": 0.1, "layers": [64]})]))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RichCardsFlow()

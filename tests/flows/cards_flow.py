"""Cards of every kind, in one flow: a default card with components, a blank card with an id,
a card type written in this file, cards on batched foreach splits, a card whose render fails
(saved as an error card, or left out), a live refresh, and an append that has no card to go to."""

from rayflow import FlowSpec, Parameter, card, current, step
from rayflow.cards import (
    Artifact,
    Image,
    Markdown,
    MetaflowCard,
    ProgressBar,
    Table,
    VegaChart,
)

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4f90000000049454e44ae426082")


class ItemCard(MetaflowCard):
    """A card type defined in the flow file: shows the split's item."""

    type = "item_card"

    def render(self, task):
        return f"<html><body><p id='item'>item={task['item'].data}</p></body></html>"


class BrokenCard(MetaflowCard):
    type = "broken_card"

    def render(self, task):
        raise RuntimeError("this card always fails")


class CardsFlow(FlowSpec):
    width = Parameter("width", default=6, type=int)

    @card
    @step
    def start(self):
        self.items = list(range(self.width))
        current.card.append(Markdown("# Start\nThe **items** are ready."))
        current.card.append(Table([[i, i * i] for i in self.items], headers=["i", "i²"]))
        current.card.append(VegaChart({
            "mark": "line", "data": {"values": [{"i": i, "sq": i * i} for i in self.items]},
            "encoding": {"x": {"field": "i", "type": "quantitative"},
                         "y": {"field": "sq", "type": "quantitative"}}}))
        current.card.append(Image(PNG_1PX, label="one pixel"))
        current.card.append("not a component")  # dropped with a warning, the step goes on
        self.next(self.body, foreach="items")

    @card(type="item_card")
    @step
    def body(self):
        self.item = self.input
        current.card.append(Markdown("nowhere to go"))  # item_card is not editable
        self.next(self.join)

    @card(type="blank", id="summary", refresh_interval=0)
    @card(type="broken_card")
    @card(type="broken_card", save_errors=False)
    @step
    def join(self, inputs):
        self.total = sum(i.item for i in inputs)
        bar = ProgressBar(max=len(inputs), label="merged")
        current.card["summary"].append(bar)
        current.card["summary"].refresh(force=True)
        bar.update(len(inputs))
        current.card["summary"].append(Artifact({"total": self.total}, name="total"))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardsFlow()

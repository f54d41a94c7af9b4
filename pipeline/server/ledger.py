"""Per-token balances: the quote is the charge, failed jobs are refunded.

Why this pricing: deAPI bills OCR by output characters, which a client cannot know before the
job runs. The server instead charges the price-calculation quote (per uploaded megapixel) when
the job is created, so a client's pre-flight quote is exactly what it pays, and refunds it when
the job ends in ``error`` (a third party reports deAPI refunds failed jobs).
"""

from __future__ import annotations


class Ledger:
    def __init__(self, tokens: tuple[str, ...], balance: float, price_per_megapixel: float,
                 min_price: float) -> None:
        self._balance = {t: float(balance) for t in tokens}
        self.price_per_megapixel = price_per_megapixel
        self.min_price = min_price

    def quote(self, width: int, height: int) -> float:
        return round(max(width * height / 1e6 * self.price_per_megapixel, self.min_price), 6)

    def balance(self, token: str) -> float:
        return round(self._balance.get(token, 0.0), 6)

    def charge(self, token: str, amount: float) -> bool:
        """Take ``amount`` if the balance covers it; ``False`` (nothing taken) otherwise."""
        if self._balance.get(token, 0.0) + 1e-12 < amount:
            return False
        self._balance[token] = self._balance.get(token, 0.0) - amount
        return True

    def refund(self, token: str, amount: float) -> None:
        self._balance[token] = self._balance.get(token, 0.0) + amount

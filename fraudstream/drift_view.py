"""The demo's drift row: the workers' PSI per feature, from their /metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence

from fraudstream.stream.drift import ALERT_PSI, CALENDAR_FEATURES, alerted
from fraudstream.top import scrape

SCRAPE_EVERY_S = 2.0


class DriftView:
    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self.psi: dict[str, float] = {}
        self._scraped = 0.0

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._scraped < SCRAPE_EVERY_S:
            return
        self._scraped = time.monotonic()
        series = scrape(self.urls).series("fraudstream_feature_psi")
        if series:
            self.psi = {dict(labels)["feature"]: value for labels, value in series.items()}

    def rows(self) -> list[tuple[str, str]]:
        watched = alerted(self.psi)
        if not watched:
            return [("drift (largest PSI)", "-")]
        name, value = max(watched.items(), key=lambda kv: kv[1])
        flag = "ALERT" if value > ALERT_PSI else "quiet"
        return [("drift (largest PSI)", f"{value:.3f} {name} ({flag}, alert > {ALERT_PSI})")]

    def summary(self) -> str:
        watched = alerted(self.psi)
        if not watched:
            return "drift: no PSI yet (fewer events than one drift block)"
        name, value = max(watched.items(), key=lambda kv: kv[1])
        calendar = ", ".join(f"{n} {self.psi[n]:.3f}" for n in sorted(CALENDAR_FEATURES)
                             if n in self.psi)
        return (f"drift: largest PSI {value:.3f} ({name}) of {len(watched)} alerted "
                f"features, alert level {ALERT_PSI}; calendar flags, not alerted: "
                f"{calendar or '-'}")

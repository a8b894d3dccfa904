"""The champion alias: which version serves now or served at an instant, the promotion history,
and the writes that change the champion (promote, refuse, rollback).

Promotions and rollbacks are compare-and-swap on the ``model_aliases`` row: a promotion decided
against champion v3 only succeeds while v3 is still the champion, and two racing promotions end
with exactly one winner (the other gets :class:`PromotionConflict`). :meth:`champion_at` answers
"which version was champion at instant t" from the history, for scoring backfills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from airloop.registry.records import ModelVersion, PromotionConflict, PromotionRecord, RegistryError
from airloop.registry.schema import CHAMPION, AliasRow, HistoryRow, _jsonable

if TYPE_CHECKING:
    from datetime import datetime

    from airloop.core.storage import Lake

# "No expectation given": a promotion that does not check which champion it replaces.
_UNCHECKED = object()


class ChampionMixin:
    """The champion half of :class:`~airloop.registry.store.ModelRegistry`.

    It relies on the registry's ``_session()``, ``_row()``, ``get()``, ``read_artifact()`` and
    ``clock`` (the instant every promotion, rollback and refusal is stamped with).
    """

    def champion_version(self, model_name: str) -> int | None:
        with self._session() as session:
            return session.scalar(
                select(AliasRow.version).where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION)
            )

    def champion(self, model_name: str) -> ModelVersion | None:
        """The version serving now, or None before the first promotion."""
        number = self.champion_version(model_name)
        return None if number is None else self.get(model_name, number)

    def champion_at(self, model_name: str, instant: datetime) -> ModelVersion | None:
        """The version that was champion at ``instant`` (aware), from the promotion history."""
        if instant.tzinfo is None:
            raise ValueError("champion_at needs an aware datetime (UTC instant)")
        with self._session() as session:
            number = session.scalar(
                select(HistoryRow.to_version)
                .where(
                    HistoryRow.model_name == model_name,
                    HistoryRow.alias == CHAMPION,
                    HistoryRow.action.in_(("promote", "rollback")),
                    HistoryRow.at <= instant,
                )
                .order_by(HistoryRow.at.desc(), HistoryRow.id.desc())
                .limit(1)
            )
        return None if number is None else self.get(model_name, number)

    def history(self, model_name: str) -> list[PromotionRecord]:
        """Every promotion, rollback and refusal of ``model_name``, oldest first."""
        with self._session() as session:
            rows = session.scalars(
                select(HistoryRow).where(HistoryRow.model_name == model_name).order_by(HistoryRow.at, HistoryRow.id)
            )
            return [PromotionRecord._from_row(r) for r in rows]

    def _swap_champion(
        self,
        session: Session,
        model_name: str,
        version: int,
        expected: int | None | object,
        actor: str,
    ) -> int | None:
        """Point ``champion`` at ``version`` if it still is ``expected``; return the old one."""
        now = self.clock.now()
        current = session.scalar(
            select(AliasRow.version).where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION)
        )
        if expected is not _UNCHECKED and current != expected:
            raise PromotionConflict(
                f"{model_name}: the champion is {_v(current)}, not {_v(expected)} as when the decision was "
                f"taken; re-run the comparison against the current champion"
            )
        if current is None:
            session.add(AliasRow(model_name=model_name, alias=CHAMPION, version=version, updated_at=now, updated_by=actor))
            try:
                session.flush()
            except IntegrityError:
                raise PromotionConflict(
                    f"{model_name}: another promotion set the first champion at the same time; "
                    f"v{version} was not promoted"
                ) from None
            return None
        result = session.execute(
            update(AliasRow)
            .where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION, AliasRow.version == current)
            .values(version=version, updated_at=now, updated_by=actor)
        )
        if result.rowcount != 1:
            raise PromotionConflict(
                f"{model_name}: the champion changed from v{current} while v{version} was being promoted"
            )
        return current

    def promote(
        self,
        model_name: str,
        version: int,
        *,
        reason: str,
        actor: str,
        run_id: str = "",
        expected_champion: int | None | object = _UNCHECKED,
        details: dict | None = None,
    ) -> PromotionRecord:
        """Make ``version`` the champion and record why.

        :param expected_champion: the champion the decision was taken against (None: there was
            none). When given, the swap only happens while it still holds; otherwise
            :class:`PromotionConflict` and nothing changes.
        :param details: the gate's numbers, stored with the history entry and on the version.
        """
        try:
            with self._session() as session:
                row = self._row(session, model_name, version)
                if row.status not in ("candidate", "retired"):
                    raise RegistryError(
                        f"{model_name} v{version} is {row.status}; only a candidate (or a retired champion) can be promoted"
                    )
                previous = self._swap_champion(session, model_name, version, expected_champion, actor)
                self._retire(session, model_name, previous)
                row.status, row.status_reason = "champion", reason
                if details is not None:
                    row.gate = _jsonable(details)
                entry = self._record(session, model_name, "promote", previous, version, version, reason, actor, run_id, details)
                session.commit()
                return entry
        except OperationalError as exc:
            raise PromotionConflict(f"{model_name}: promotion of v{version} lost a database race: {exc.orig}") from exc

    def refuse(
        self, model_name: str, version: int, *, reason: str, actor: str, run_id: str = "", details: dict | None = None
    ) -> PromotionRecord:
        """Record that the gate kept the champion: ``version`` becomes ``rejected``."""
        with self._session() as session:
            row = self._row(session, model_name, version)
            if row.status == "champion":
                raise RegistryError(f"{model_name} v{version} is the champion; it cannot be refused")
            current = session.scalar(
                select(AliasRow.version).where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION)
            )
            row.status, row.status_reason = "rejected", reason
            if details is not None:
                row.gate = _jsonable(details)
            entry = self._record(session, model_name, "refuse", current, current, version, reason, actor, run_id, details)
            session.commit()
            return entry

    def previous_champion(self, model_name: str) -> int | None:
        """The champion before the current one, walking back through rollbacks.

        Promotions push onto a stack, a rollback pops back to its target: after promoting v1,
        v2, v3, "previous" is v2; after rolling back to v2, "previous" is v1.
        """
        stack: list[int] = []
        for entry in self.history(model_name):
            if entry.action == "promote":
                stack.append(entry.to_version)
            elif entry.action == "rollback":
                if entry.to_version in stack:
                    del stack[stack.index(entry.to_version) + 1 :]
                else:
                    stack.append(entry.to_version)
        return stack[-2] if len(stack) >= 2 else None

    def rollback(
        self,
        model_name: str,
        to: int | str = "previous",
        *,
        reason: str,
        actor: str,
        run_id: str = "",
        lake: "Lake | None" = None,
    ) -> PromotionRecord:
        """Make an earlier champion the champion again (``to``: a version number or ``previous``).

        :param lake: when given, the target's artifact is read and its sha256 checked first, so
            a rollback never switches serving to a model that cannot be loaded.
        :raises VersionNotFound: ``to`` is not a version of ``model_name``.
        :raises RegistryError: no champion, no previous champion, the target is already the
            champion or never was one (rejected, failed, pending).
        """
        current = self.champion_version(model_name)
        if current is None:
            raise RegistryError(f"{model_name} has no champion: there is nothing to roll back")
        if str(to) == "previous":
            target = self.previous_champion(model_name)
            if target is None:
                raise RegistryError(f"{model_name}: champion v{current} has no previous champion to roll back to")
        else:
            try:
                target = int(to)
            except (TypeError, ValueError):
                raise RegistryError(f"rollback target must be a version number or 'previous', got {to!r}") from None
        target_mv = self.get(model_name, target)
        if target == current:
            raise RegistryError(f"{model_name} v{target} is already the champion")
        if target_mv.status not in ("retired", "candidate") or not target_mv.artifact_uri:
            raise RegistryError(
                f"{model_name} v{target} is {target_mv.status} ({target_mv.status_reason or 'no reason recorded'}); "
                "roll back only to a version that served or passed registration"
            )
        if lake is not None:
            self.read_artifact(target_mv, lake)
        with self._session() as session:
            previous = self._swap_champion(session, model_name, target, current, actor)
            self._retire(session, model_name, previous)
            row = self._row(session, model_name, target)
            row.status, row.status_reason = "champion", f"rollback: {reason}"
            entry = self._record(session, model_name, "rollback", previous, target, target, reason, actor, run_id, {})
            session.commit()
            return entry

    def _retire(self, session: Session, model_name: str, version: int | None) -> None:
        if version is None:
            return
        old = self._row(session, model_name, version)
        old.status = "retired"

    def _record(self, session, model_name, action, from_v, to_v, candidate, reason, actor, run_id, details) -> PromotionRecord:
        row = HistoryRow(
            model_name=model_name,
            alias=CHAMPION,
            action=action,
            from_version=from_v,
            to_version=to_v,
            candidate_version=candidate,
            reason=reason,
            actor=actor,
            run_id=run_id,
            at=self.clock.now(),
            details=_jsonable(details or {}),
        )
        session.add(row)
        session.flush()
        return PromotionRecord._from_row(row)


def _v(version) -> str:
    return "none" if version is None or version is _UNCHECKED else f"v{version}"

"""The initial schema: every table of docs/data-model.md.

Hand-checked autogenerate output. Times are DateTime(timezone=True) (UTC; db.types
reads them back as aware datetimes on SQLite too), money is integer cents.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agent_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agent', sa.String(length=128), nullable=False),
        sa.Column('queue', sa.String(length=64), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=255), nullable=True),
        sa.Column('linkedid', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_events'))
    )
    op.create_index(op.f('ix_agent_events_agent'), 'agent_events', ['agent'])
    op.create_index(op.f('ix_agent_events_at'), 'agent_events', ['at'])

    op.create_table('calls',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('linkedid', sa.String(length=64), nullable=False),
        sa.Column('caller_num', sa.String(length=64), nullable=True),
        sa.Column('caller_name', sa.String(length=128), nullable=True),
        sa.Column('dnid', sa.String(length=64), nullable=True),
        sa.Column('ivr_session_id', sa.String(length=32), nullable=True),
        sa.Column('queue', sa.String(length=64), nullable=True),
        sa.Column('tier', sa.String(length=16), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ivr_entered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('queue_entered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('queue_left_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('wait_seconds', sa.Float(), nullable=True),
        sa.Column('talk_seconds', sa.Float(), nullable=True),
        sa.Column('hold_seconds', sa.Float(), nullable=False),
        sa.Column('agent', sa.String(length=128), nullable=True),
        sa.Column('transfers', sa.JSON(), nullable=False),
        sa.Column('disposition', sa.String(length=16), nullable=False),
        sa.Column('hangup_cause', sa.Integer(), nullable=True),
        sa.Column('hangup_cause_text', sa.String(length=128), nullable=True),
        sa.Column('close_reason', sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
        sa.UniqueConstraint('linkedid', name=op.f('uq_calls_linkedid'))
    )
    op.create_index(op.f('ix_calls_ended_at'), 'calls', ['ended_at'])
    op.create_index(op.f('ix_calls_ivr_session_id'), 'calls', ['ivr_session_id'])
    op.create_index(op.f('ix_calls_started_at'), 'calls', ['started_at'])

    op.create_table('customers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('tier', sa.String(length=16), nullable=False),
        sa.Column('pin_hash', sa.String(length=255), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('balance_cents', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('last_payment_cents', sa.BigInteger(), nullable=True),
        sa.Column('last_payment_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
        sa.UniqueConstraint('account', name=op.f('uq_customers_account'))
    )
    op.create_index(op.f('ix_customers_phone'), 'customers', ['phone'])

    op.create_table('survey_answers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ivr_session_id', sa.String(length=32), nullable=True),
        sa.Column('linkedid', sa.String(length=64), nullable=True),
        sa.Column('question', sa.String(length=64), nullable=False),
        sa.Column('rating', sa.Integer(), nullable=True),
        sa.Column('agent', sa.String(length=128), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('rating IS NULL OR (rating >= 1 AND rating <= 5)', name=op.f('ck_survey_answers_rating_range')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_answers'))
    )
    op.create_index(op.f('ix_survey_answers_ivr_session_id'), 'survey_answers', ['ivr_session_id'])
    op.create_index(op.f('ix_survey_answers_linkedid'), 'survey_answers', ['linkedid'])

    op.create_table('call_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=128), nullable=True),
        sa.Column('uniqueid', sa.String(length=64), nullable=True),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_events_call_id_calls'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_call_events'))
    )
    op.create_index(op.f('ix_call_events_call_id'), 'call_events', ['call_id'])

    op.create_table('callbacks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('queue', sa.String(length=64), nullable=True),
        sa.Column('ivr_session_id', sa.String(length=32), nullable=True),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_callbacks_customer_id_customers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_callbacks'))
    )
    op.create_index(op.f('ix_callbacks_customer_id'), 'callbacks', ['customer_id'])
    op.create_index(op.f('ix_callbacks_status'), 'callbacks', ['status'])

    op.create_table('ivr_sessions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('channel', sa.String(length=128), nullable=False),
        sa.Column('uniqueid', sa.String(length=64), nullable=False),
        sa.Column('linkedid', sa.String(length=64), nullable=True),
        sa.Column('caller_id_num', sa.String(length=64), nullable=True),
        sa.Column('caller_id_name', sa.String(length=128), nullable=True),
        sa.Column('dnid', sa.String(length=64), nullable=True),
        sa.Column('flow', sa.String(length=128), nullable=False),
        sa.Column('flow_version', sa.String(length=64), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('tier', sa.String(length=16), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('outcome_target', sa.String(length=255), nullable=True),
        sa.Column('outcome_step', sa.String(length=128), nullable=True),
        sa.Column('outcome_detail', sa.Text(), nullable=False),
        sa.Column('agi_commands', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_ivr_sessions_customer_id_customers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ivr_sessions'))
    )
    op.create_index(op.f('ix_ivr_sessions_customer_id'), 'ivr_sessions', ['customer_id'])
    op.create_index(op.f('ix_ivr_sessions_linkedid'), 'ivr_sessions', ['linkedid'])
    op.create_index(op.f('ix_ivr_sessions_uniqueid'), 'ivr_sessions', ['uniqueid'])

    op.create_table('tickets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=32), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('ivr_session_id', sa.String(length=32), nullable=True),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_tickets_call_id_calls')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_tickets_customer_id_customers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
        sa.UniqueConstraint('reference', name=op.f('uq_tickets_reference'))
    )
    op.create_index(op.f('ix_tickets_call_id'), 'tickets', ['call_id'])
    op.create_index(op.f('ix_tickets_customer_id'), 'tickets', ['customer_id'])
    op.create_index(op.f('ix_tickets_ivr_session_id'), 'tickets', ['ivr_session_id'])

    op.create_table('voicemails',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ivr_session_id', sa.String(length=32), nullable=True),
        sa.Column('mailbox', sa.String(length=128), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('caller_num', sa.String(length=64), nullable=True),
        sa.Column('left_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_voicemails_customer_id_customers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_voicemails'))
    )
    op.create_index(op.f('ix_voicemails_customer_id'), 'voicemails', ['customer_id'])


def downgrade() -> None:
    op.drop_table('voicemails')
    op.drop_table('tickets')
    op.drop_table('ivr_sessions')
    op.drop_table('callbacks')
    op.drop_table('call_events')
    op.drop_table('survey_answers')
    op.drop_table('customers')
    op.drop_table('calls')
    op.drop_table('agent_events')

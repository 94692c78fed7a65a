"""Database: SQLAlchemy 2.0 models, sessions, Alembic migrations, repositories."""

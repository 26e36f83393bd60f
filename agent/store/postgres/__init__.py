"""The PostgreSQL project store for teams: `store.PostgresStore`, one schema per project.

Needs the `postgres` extra (psycopg 3): `pip install 'labelagent[postgres]'`; only `store.py`
and `connection.py` import it, so `url.py` reads a project's address without the driver.
Projects are addressed by `postgresql://USER@HOST:PORT/DB?project=NAME` (`url.py`);
`agent.store.opening` opens the right store for a project folder.
"""

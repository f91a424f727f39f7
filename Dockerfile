# Access Desk remote: gunicorn 'app:create_app()' with the defaults in gunicorn.conf.py.
# Its packages come at the exact versions of requirements/run.lock (scripts/lock.sh), the project with --no-deps.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml ./
COPY requirements/run.lock ./requirements/
COPY *.py ./
COPY handlers ./handlers
COPY resolvers ./resolvers
COPY store ./store
COPY simulator ./simulator
COPY migrations ./migrations
COPY static ./static
RUN pip install -r requirements/run.lock && pip install --no-deps . && pip check && useradd --system --uid 10001 access-desk && mkdir -p var && chown access-desk var
USER access-desk
ENV PORT=8000 DATABASE_URL=sqlite:////app/var/access-desk.sqlite3
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"
CMD ["gunicorn", "app:create_app()"]

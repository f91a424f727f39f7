# Access Desk remote: the wheel, served by plain `gunicorn` with the defaults in gunicorn.conf.py
# (wsgi_app = "access_desk.app:create_app()").
# The build stage makes the wheel from the product's folders only (access_desk/, handlers/,
# resolvers/, static/): the image carries no simulator/, tests/, bench/ or scripts/ and no source
# tree. Its packages come at the exact versions of requirements/run.lock (scripts/lock.sh), the
# wheel with --no-deps. tests/packaging/test_dockerfile.py checks what is copied.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY access_desk ./access_desk
COPY handlers ./handlers
COPY resolvers ./resolvers
COPY static ./static
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements/run.lock /tmp/run.lock
COPY --from=build /wheels /tmp/wheels
COPY gunicorn.conf.py ./
RUN pip install -r /tmp/run.lock && pip install --no-deps /tmp/wheels/*.whl && pip check && rm -rf /tmp/wheels /tmp/run.lock && useradd --system --uid 10001 access-desk && mkdir -p var && chown access-desk var
USER access-desk
ENV PORT=8000 DATABASE_URL=sqlite:////app/var/access-desk.sqlite3
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"
CMD ["gunicorn"]

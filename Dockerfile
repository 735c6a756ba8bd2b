# Two stages: the rephrase encoder's ONNX graph is built once with the build-only packages
# (requirements-build.txt: torch, transformers, onnx), and only the graph is carried into the
# runtime image, which installs requirements.txt alone (onnxruntime serves the graph).

FROM python:3.11-slim AS encoder
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /build
COPY requirements.txt requirements-build.txt ./
RUN pip install --no-cache-dir -r requirements-build.txt
COPY rephrase/ rephrase/
# The graph goes where settings.REPHRASE_ENCODER_DIR points (below: /app/encoder, copied from /encoder).
RUN REPHRASE_ENCODER_DIR=/encoder python -m rephrase.encoder build

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REPHRASE_ENCODER_DIR=/app/encoder
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt gunicorn==23.0.0
COPY . .
COPY --from=encoder /encoder/ /app/encoder/
# A build-time key only: at run time the app refuses to start without DJANGO_SECRET_KEY(_FILE).
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
# Not root: the media volume (exports, the ingest spool) is created owned by the app's user.
RUN useradd --system --uid 10001 --home-dir /app evalgap && mkdir -p /media && chown evalgap /media
USER evalgap
EXPOSE 8000
CMD ["gunicorn", "evalgap.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]

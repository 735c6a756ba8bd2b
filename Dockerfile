FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt gunicorn==23.0.0
COPY . .
# A build-time key only: at run time the app refuses to start without DJANGO_SECRET_KEY(_FILE).
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
# Not root: the media volume (exports, the ingest spool) is created owned by the app's user.
RUN useradd --system --uid 10001 --home-dir /app evalgap && mkdir -p /media && chown evalgap /media
USER evalgap
EXPOSE 8000
CMD ["gunicorn", "evalgap.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]

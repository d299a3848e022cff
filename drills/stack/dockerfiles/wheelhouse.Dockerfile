# The wheelhouse as an image, so that app.Dockerfile can `COPY --from` it with the classic
# builder (no BuildKit named contexts) and without putting the wheels in the final image.
# Context: a wheelhouse directory (every wheel + requirements.txt), sent by drills/stack/images.py.
FROM scratch
COPY . /wheels

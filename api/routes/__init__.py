"""One router per resource; `api.service.create_app` includes them all under `/api/v1`."""

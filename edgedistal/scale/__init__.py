"""Running past one machine (Ray). Importing this package imports no Ray; its modules do, lazily."""

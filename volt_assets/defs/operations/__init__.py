"""Operations: the daily job and schedule, and the bucket-policy job."""

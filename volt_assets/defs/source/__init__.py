"""Volt's own data, where the lineage starts: its PostgreSQL tables and its pictures folder."""

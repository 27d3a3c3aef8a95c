"""promise_tracker"""

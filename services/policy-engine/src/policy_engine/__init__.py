"""policy_engine"""

import type { App } from "../types.ts";
import acceptMembership from "./accept-membership.ts";
import authorizeRequest from "./authorize-request.ts";
import changeKeyExpiry from "./change-key-expiry.ts";
import changePassword from "./change-password.ts";
import createCompany from "./create-company.ts";
import createCredential from "./create-credential.ts";
import createKey from "./create-key.ts";
import createMerchantAccount from "./create-merchant-account.ts";
import createVerifyKey from "./create-verify-key.ts";
import createWebhook from "./create-webhook.ts";
import deleteWebhook from "./delete-webhook.ts";
import type { RouteDeps } from "./deps.ts";
import exportAudit from "./export-audit.ts";
import forgotPassword from "./forgot-password.ts";
import generateCredentialPassword from "./generate-credential-password.ts";
import getCatalog from "./get-catalog.ts";
import getCompanyUsage from "./get-company-usage.ts";
import getCredential from "./get-credential.ts";
import getExpiryPolicy from "./get-expiry-policy.ts";
import getKey from "./get-key.ts";
import getKeyUsage from "./get-key-usage.ts";
import getLeakPolicy from "./get-leak-policy.ts";
import getMe from "./get-me.ts";
import getMerchantAccount from "./get-merchant-account.ts";
import getMetrics from "./get-metrics.ts";
import getWebhook from "./get-webhook.ts";
import health from "./health.ts";
import inviteUser from "./invite-user.ts";
import listAudit from "./list-audit.ts";
import listCredentials from "./list-credentials.ts";
import listKeys from "./list-keys.ts";
import listMerchantAccounts from "./list-merchant-accounts.ts";
import listUsers from "./list-users.ts";
import listWebhookDeliveries from "./list-webhook-deliveries.ts";
import listWebhooks from "./list-webhooks.ts";
import login from "./login.ts";
import logout from "./logout.ts";
import openapi from "./openapi.ts";
import regenerateRecoveryCodes from "./regenerate-recovery-codes.ts";
import reinviteUser from "./reinvite-user.ts";
import reportGitHubLeaks from "./report-github-leaks.ts";
import reportLeak from "./report-leak.ts";
import resetPassword from "./reset-password.ts";
import resetUserTotp from "./reset-user-totp.ts";
import retryWebhookDelivery from "./retry-webhook-delivery.ts";
import revokeKey from "./revoke-key.ts";
import rotateKey from "./rotate-key.ts";
import rotateWebhookSecret from "./rotate-webhook-secret.ts";
import sendWebhookTest from "./send-webhook-test.ts";
import streamVerifyChanges from "./stream-verify-changes.ts";
import switchCompany from "./switch-company.ts";
import totpConfirm from "./totp-confirm.ts";
import totpSetup from "./totp-setup.ts";
import updateCredential from "./update-credential.ts";
import updateExpiryPolicy from "./update-expiry-policy.ts";
import updateKey from "./update-key.ts";
import updateLeakPolicy from "./update-leak-policy.ts";
import updateMerchantAccount from "./update-merchant-account.ts";
import updateUser from "./update-user.ts";
import updateWebhook from "./update-webhook.ts";
import verifyAllAudit from "./verify-all-audit.ts";
import verifyAudit from "./verify-audit.ts";
import verifyKey from "./verify-key.ts";
export function registerRoutes(app: App, deps: RouteDeps) {
  for (const route of [
    health,
    getMetrics,
    openapi,
    getCatalog,
    createCompany,
    createVerifyKey,
    createCredential,
    listCredentials,
    getCredential,
    updateCredential,
    generateCredentialPassword,
    createMerchantAccount,
    listMerchantAccounts,
    getMerchantAccount,
    updateMerchantAccount,
    createKey,
    listKeys,
    getKey,
    getKeyUsage,
    getCompanyUsage,
    updateKey,
    revokeKey,
    rotateKey,
    changeKeyExpiry,
    reportGitHubLeaks,
    reportLeak,
    getLeakPolicy,
    updateLeakPolicy,
    verifyKey,
    authorizeRequest,
    streamVerifyChanges,
    login,
    logout,
    switchCompany,
    acceptMembership,
    getMe,
    changePassword,
    totpSetup,
    totpConfirm,
    listUsers,
    inviteUser,
    updateUser,
    forgotPassword,
    resetPassword,
    reinviteUser,
    resetUserTotp,
    regenerateRecoveryCodes,
    listAudit,
    verifyAudit,
    verifyAllAudit,
    exportAudit,
    getExpiryPolicy,
    updateExpiryPolicy,
    createWebhook,
    listWebhooks,
    getWebhook,
    updateWebhook,
    deleteWebhook,
    rotateWebhookSecret,
    listWebhookDeliveries,
    retryWebhookDelivery,
    sendWebhookTest,
  ]) {
    route(app, deps);
  }
}
